# The two commands of README.md.
#   make run   install what is missing, build, analyse the bundled captures
#   make test  install what the tests need, lint, run every test, fuzz each target for 20 s
CARGO ?= cargo

.PHONY: run test build fixtures bench lint

run:
	@scripts/setup-debian.sh build
	$(CARGO) build --release --locked
	./target/release/portflow read fixtures/corpus --top 25

test:
	@scripts/setup-debian.sh test
	$(MAKE) --no-print-directory lint
	$(CARGO) test --release --locked --workspace
	scripts/fuzz.sh 20

build:
	$(CARGO) build --release --locked

fixtures:
	$(CARGO) run --release --locked -p portflow-synth --bin make-fixtures

bench:
	benches/compare.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
