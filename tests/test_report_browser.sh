#!/bin/sh
# Browser check of `bnkit report`: a real study (`bnkit tune` on a small generated problem, plus
# a failed trial whose reason is a script), its report rendered by headless Chromium to a PNG,
# and the test fails when the page is blank or errored: too few colours or too little content,
# no pixels of the charts' blue (#0072B2, the importance bars and complete-trial markers) or
# green (#009E73, the best trial), or the script in the reason ran (escaping broke).
# Skipped (77) without Chromium (Debian package `chromium`).
# Usage: test_report_browser.sh BNKIT PNG_STATS [KEEP_DIR]   (KEEP_DIR: keep report and PNG)
set -u
BNKIT=$1
PNG_STATS=$2
KEEP=${3:-}
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || {
    echo "SKIP: chromium is not installed (apt-get install chromium)"
    exit 77
}
dir=$(mktemp -d)
profile=$(mktemp -d)
trap 'rm -rf "$dir" "$profile"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

awk 'BEGIN { srand(7); print "label,a,b";
             for (i = 0; i < 600; i++) { a = rand() * 2 - 1; b = rand() * 2 - 1;
                                         printf "%d,%.4f,%.4f\n", (a * a + b > 0.2), a, b } }' \
    >"$dir/train.csv"
train="--data=csv:$dir/train.csv --model=dense:16,relu,bn,dense:2 --batch=25 --val-size=150"
train="$train --epochs=6 --print-every=0 --threads=1"
# shellcheck disable=SC2086 # $train is a list of options
"$BNKIT" tune --study "$dir/s.db" --trials 16 --sampler random --seed 5 --pruner median \
    --param 'bn.momentum=log:0.5:0.999' --param 'lr=log:1e-3:1e-1' \
    --param 'bn.normalize_with=cat:batch,renorm' \
    --param 'bn.rmax=float:1:3@bn.normalize_with=renorm' \
    -- $train >"$dir/tune.out" 2>&1 || fail "bnkit tune: $(cat "$dir/tune.out")"
id=$("$BNKIT" ask --study "$dir/s.db" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
[ -n "$id" ] || fail "bnkit ask gave no trial id"
"$BNKIT" tell --study "$dir/s.db" --trial "$id" --state failed \
    --reason "<script>document.title='pwned'</script> diverged: NaN/Inf loss" ||
    fail "bnkit tell failed"
"$BNKIT" report --study "$dir/s.db" --out "$dir/report.html" || fail "bnkit report failed"

render() { # render ARGS...: headless Chromium on the report with the flags of a quiet, offline run
    timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --disable-dev-shm-usage --force-color-profile=srgb --hide-scrollbars \
        --user-data-dir="$profile" "$@" "file://$dir/report.html"
}
render --screenshot="$dir/out.png" --window-size=1280,2000 >"$dir/chromium.log" 2>&1 ||
    fail "chromium exited with $?: $(tail -5 "$dir/chromium.log")"
[ -s "$dir/out.png" ] || fail "no screenshot: $(tail -5 "$dir/chromium.log")"
stats=$("$PNG_STATS" "$dir/out.png" 0072b2 009e73) || fail "unreadable screenshot"
echo "screenshot: $stats"
get() { echo "$stats" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
[ "$(get width)" -eq 1280 ] || fail "screenshot width $(get width), want 1280"
[ "$(get colours)" -ge 200 ] || fail "blank page? only $(get colours) colours"
# content: fraction of pixels that differ from the background (x1000, integer shell arithmetic)
content=$(get content | awk '{ printf "%d", $1 * 1000 }')
[ "$content" -ge 20 ] || fail "blank page? content fraction $(get content)"
[ "$(get 0072b2)" -ge 300 ] || fail "the charts did not render: $(get 0072b2) pixels of #0072B2"
[ "$(get 009e73)" -ge 30 ] || fail "the best trial is not drawn: $(get 009e73) pixels of #009E73"

# the failure reason's script must be text, not code: the title stays the report's
render --dump-dom >"$dir/dom.html" 2>>"$dir/chromium.log" || fail "chromium --dump-dom failed"
grep -q "<title>Tuning report" "$dir/dom.html" || fail "page title missing from the DOM"
grep -q "<title>pwned" "$dir/dom.html" && fail "a script from the study ran in the report"
grep -q "document.title='pwned'" "$dir/dom.html" || fail "the failure reason is not shown"

if [ -n "$KEEP" ]; then
    mkdir -p "$KEEP" && cp "$dir/report.html" "$dir/out.png" "$KEEP"/
fi
echo "ok: report rendered"
