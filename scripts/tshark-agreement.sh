#!/usr/bin/env bash
# Compares portflow with tshark over a whole corpus (default ../shared/corpus) and
# writes the raw result to docs/tshark-agreement.txt. Not part of `make test`:
# it takes several minutes (tshark starts slowly, once per file).
set -euo pipefail
cd "$(dirname "$0")/.."
export PORTFLOW_CORPUS="${1:-${PORTFLOW_CORPUS:-$PWD/../shared/corpus}}"
export PORTFLOW_AGREEMENT_OUT="$PWD/docs/tshark-agreement.txt"
cargo test --release --test tshark -- --ignored corpus_agreement --nocapture
echo "written: $PORTFLOW_AGREEMENT_OUT"
