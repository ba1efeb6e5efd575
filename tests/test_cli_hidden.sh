#!/usr/bin/env bash
# test_cli_hidden.sh: `clipcl embed --hidden-states last|penultimate` against
# Hugging Face transformers' CLIPTextModel on the same weights (the committed
# fixture of tests/tools/make_hidden_fixtures.py: a tiny random CLIP with the
# real vocabulary, HF names, F16): last_hidden_state and
# final_layer_norm(hidden_states[-2]) within 1e-5, shape (N, context, width),
# rows listed in PREFIX.text.txt; and the option's refusals. The same from
# the text tower alone (the fixture's text_model.* tensors, as a diffusion
# pipeline's text_encoder/model.safetensors holds them), which refuses image
# and text embeddings with a message, and needs its config.
# Needs numpy (Debian's python3-numpy), not torch.
set -u
PY=${PYTHON:-/usr/bin/python3}
fails=0
check() { # name, condition command...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
C=$CLIPCL
D=$SRC/tests/data/hidden
"$PY" -c "import numpy" 2>/dev/null || { echo "FAIL: $PY cannot import numpy (install python3-numpy)"; exit 1; }

for L in last penultimate; do
  check "embed --hidden-states $L" $C embed --model "$D/model.safetensors" --model-config "$D/config.json" \
    --texts "$D/texts.txt" --hidden-states $L --out "$T/$L"
  check "$L: no embeddings file, the rows listed" bash -c "[ ! -e '$T/$L.text.npy' ] && cmp -s '$T/$L.text.txt' '$D/texts.txt'"
  check "$L equals transformers' to 1e-5" "$PY" - "$T/$L.text_hidden.npy" "$D/$L.npy" <<'PYEOF'
import sys
import numpy as np
got, want = np.load(sys.argv[1]), np.load(sys.argv[2])
assert got.dtype == np.float32 and got.shape == want.shape, (got.dtype, got.shape, want.shape)
err = np.abs(got.astype(np.float64) - want).max()
print("     max abs difference %.3g (values up to %.3g)" % (err, np.abs(want).max()))
assert err <= 1e-5
PYEOF
done
check "penultimate differs from last" "$PY" -c "
import numpy as np, sys
a, b = np.load('$T/last.text_hidden.npy'), np.load('$T/penultimate.text_hidden.npy')
sys.exit(0 if np.abs(a - b).max() > 0.1 else 1)"

# the text tower alone, with and without text_projection
"$PY" - "$SRC/tests/tools" "$D/model.safetensors" "$T" <<'PYEOF'
import sys
sys.path.insert(0, sys.argv[1])
import st
t, _ = st.read(sys.argv[2])
st.write(sys.argv[3] + "/text_encoder.safetensors", {k: v for k, v in t.items() if k.startswith("text_model.")})
st.write(sys.argv[3] + "/text_encoder_proj.safetensors",
         {k: v for k, v in t.items() if k.startswith("text_model.") or k == "text_projection.weight"})
PYEOF
for f in text_encoder text_encoder_proj; do
  check "$f: hidden states as from the whole model" bash -c "$C embed --model '$T/$f.safetensors' --model-config '$D/config.json' \
    --texts '$D/texts.txt' --hidden-states penultimate --out '$T/$f' >/dev/null &&
    cmp -s '$T/$f.text_hidden.npy' '$T/penultimate.text_hidden.npy'"
  out=$($C embed --model "$T/$f.safetensors" --model-config "$D/config.json" --images "$SRC/tests/data/images" --out "$T/x" 2>&1); rc=$?
  check "$f: image embeddings refused" bash -c "[ $rc -ne 0 ] && grep -q 'holds a text tower only (no image tower)' <<<'$out'"
done
out=$($C embed --model "$T/text_encoder.safetensors" --model-config "$D/config.json" --texts "$D/texts.txt" --out "$T/x" 2>&1); rc=$?
check "text_encoder: text embeddings refused (no projection)" bash -c "[ $rc -ne 0 ] && grep -q 'no text projection' <<<'$out'"
check "text_encoder_proj: text embeddings as from the whole model" bash -c "
  $C embed --model '$T/text_encoder_proj.safetensors' --model-config '$D/config.json' --texts '$D/texts.txt' --out '$T/tp' >/dev/null &&
  $C embed --model '$D/model.safetensors' --model-config '$D/config.json' --texts '$D/texts.txt' --out '$T/full' >/dev/null &&
  cmp -s '$T/tp.text.npy' '$T/full.text.npy'"
out=$($C embed --model "$T/text_encoder.safetensors" --texts "$D/texts.txt" --hidden-states last --out "$T/x" 2>&1); rc=$?
check "text_encoder without a config: refused with a hint" bash -c "[ $rc -ne 0 ] && grep -q 'text tower only.*--model-config' <<<'$out'"

out=$($C embed --model "$D/model.safetensors" --texts "$D/texts.txt" --hidden-states first --out "$T/x" 2>&1); rc=$?
check "--hidden-states first is refused" bash -c "[ $rc -eq 2 ] && grep -q 'expected last or penultimate' <<<'$out'"
out=$($C embed --model "$D/model.safetensors" --images "$SRC/tests/data/images" --hidden-states last --out "$T/x" 2>&1); rc=$?
check "--hidden-states without --texts is refused" bash -c "[ $rc -eq 2 ] && grep -q 'needs --texts' <<<'$out'"

[ $fails -eq 0 ] && echo "all passed" || { echo "$fails failed"; exit 1; }
