# The two commands of README.md.
#   make run   install what is missing, build, analyse the bundled captures
#   make test  install what the tests need, lint, run every test, fuzz each target for 20 s
CARGO ?= cargo

PREFIX ?= /usr/local

.PHONY: run test build fixtures bench lint install

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

# The binary, its manual pages and shell completions under $(DESTDIR)$(PREFIX).
install: build
	install -Dm755 target/release/portflow $(DESTDIR)$(PREFIX)/bin/portflow
	target/release/portflow man --dir $(DESTDIR)$(PREFIX)/share/man/man1
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	target/release/portflow completions bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/portflow
	target/release/portflow completions zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_portflow
	target/release/portflow completions fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/portflow.fish

fixtures:
	$(CARGO) run --release --locked -p portflow-synth --bin make-fixtures

bench:
	benches/compare.sh

lint:
	$(CARGO) fmt --all -- --check </dev/null
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings </dev/null
