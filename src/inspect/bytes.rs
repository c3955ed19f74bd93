//! Small checks on untrusted byte slices, shared by the signatures.

#[inline]
pub(super) fn be16(p: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([p[at], p[at + 1]])
}

#[inline]
pub(super) fn be32(p: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

pub(super) fn starts_ci(p: &[u8], prefix: &[u8]) -> bool {
    p.len() >= prefix.len() && p[..prefix.len()].eq_ignore_ascii_case(prefix)
}

pub(super) fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    find_ci(hay, needle).is_some()
}

pub(super) fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// The first line, without its line end (all of `p` if it has none).
pub(super) fn first_line(p: &[u8]) -> &[u8] {
    let end = p.iter().position(|&b| b == b'\r' || b == b'\n');
    &p[..end.unwrap_or(p.len())]
}

/// The first line is printable text (and ends with a line end, when the
/// prefix holds one).
pub(super) fn line_is_text(p: &[u8]) -> bool {
    first_line(p)
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80)
}
