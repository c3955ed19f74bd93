//! Writes the generated fixtures into `fixtures/generated/` (or the folder given).
//! `cargo run -p portflow-synth --bin make-fixtures [DIR]` (`make fixtures`)
fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fixtures/generated".to_string());
    std::fs::create_dir_all(&dir)?;
    let mut notes = String::from(
        "# Generated fixtures\n\nMade by `make fixtures` (`cargo run -p portflow-synth --bin make-fixtures`) from `synth/src/fixtures.rs` \
         (seeded; the test `generated_fixtures_are_reproducible` checks these files equal what the code makes). \
         The same conversations (synth/src/fixtures.rs `conversations`) are written under each link type, so \
         every file except the `bad-*` ones, `options-ext.pcap` and `fragments.pcap` has the same ports and flows.\n\n\
         | file | what |\n|---|---|\n",
    );
    for f in portflow_synth::fixtures::all() {
        std::fs::write(format!("{dir}/{}", f.name), &f.bytes)?;
        notes.push_str(&format!("| {} | {} |\n", f.name, f.note));
    }
    std::fs::write(format!("{dir}/README.md"), notes)?;
    Ok(())
}
