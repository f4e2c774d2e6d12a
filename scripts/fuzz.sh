#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a bounded time and fails if any of
# them crashes.
#
#   scripts/fuzz.sh [seconds-per-target]     (default 20)
#
# Each target starts from its committed seeds in fuzz/corpus/<target>/;
# what libFuzzer learns on the way is kept under fuzz/target/corpus/, which
# is not committed, so repeated runs go deeper without touching the seeds.
# A crash leaves its input in fuzz/artifacts/<target>/; minimize it with
# `cargo fuzz tmin <target> <file>`, commit it under
# fuzz/regressions/<target>/, and `cargo test` replays it from then on
# (crates/apiserver/tests/fuzz_regressions.rs).
#
# cargo fuzz needs nightly-only compiler flags; the machine's one stable
# toolchain accepts them with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
export RUSTC_BOOTSTRAP=1
# How the targets are built: by default unoptimized with debug assertions
# (an integer overflow is a crash) and without AddressSanitizer (the code
# under test is safe Rust), which builds in a fraction of the time a
# release build with ASan takes. FUZZ_BUILD_FLAGS="--release" gives the
# configuration the throughput figures in BENCHMARKS.md were measured in.
read -r -a build_flags <<<"${FUZZ_BUILD_FLAGS:---dev --sanitizer none}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "scripts/fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

echo "scripts/fuzz.sh: building the fuzz targets" >&2
cargo fuzz build "${build_flags[@]}"

failed=()
summary=()
for target in $(cargo fuzz list); do
  work="fuzz/target/corpus/$target"
  log="fuzz/target/$target.log"
  mkdir -p "$work" "fuzz/artifacts/$target"
  echo "scripts/fuzz.sh: $target for ${seconds}s" >&2
  # The working corpus comes first: libFuzzer adds what it finds there.
  if cargo fuzz run "${build_flags[@]}" "$target" "$work" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    status=ok
  else
    status=CRASH
    failed+=("$target")
    grep -E "panicked at|ERROR: libFuzzer|SUMMARY|Test unit written to" "$log" >&2 || tail -n 30 "$log" >&2
  fi
  # The last status line has the coverage (cov: edges, ft: features) and
  # the final statistics the run count and speed.
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -n 1)
  speed=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+)/\1/p' "$log" | tail -n 1)
  summary+=("$(printf '%-16s %-6s %10s runs %8s execs/s  cov %6s  ft %6s' "$target" "$status" "${runs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}")")
done

echo "scripts/fuzz.sh: ${seconds}s per target (logs in fuzz/target/<target>.log)"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "scripts/fuzz.sh: crashes in: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
  exit 1
fi
