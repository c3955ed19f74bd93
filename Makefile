# The two commands of README.md.
#   make run   install what is missing, build, analyse the bundled captures
#   make test  install what the tests need, lint, run every test, fuzz each target for 20 s
CARGO ?= cargo

.PHONY: run test build fixtures bench lint

run:
	@scripts/setup-debian.sh build </dev/null
	$(CARGO) build --release --locked </dev/null
	./target/release/portflow read fixtures/corpus --top 25

# Nothing here reads standard input (cargo's rustc probe, `rustc -`, would read
# whatever was left there as source): every command gets /dev/null.
test:
	@scripts/setup-debian.sh test </dev/null
	$(MAKE) --no-print-directory lint </dev/null
	$(CARGO) test --release --locked --workspace </dev/null
	scripts/fuzz.sh 20 </dev/null

build:
	$(CARGO) build --release --locked

fixtures:
	$(CARGO) run --release --locked -p portflow-synth --bin make-fixtures

bench:
	benches/compare.sh

lint:
	$(CARGO) fmt --all -- --check </dev/null
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings </dev/null
