#!/usr/bin/env bash
# kernels_vw.sh WIDTH: every OpenCL op test with vector code again at kernel
# vector width WIDTH (kernels/prelude.cl: 4, 8 or 16) when this CPU does not
# pick it by itself (ctest test_kernels_vw4/8/16; the native width is the
# ordinary op tests, and that one exits 77, skipped). So each variant is
# checked against the C references on any machine. Width 8 runs through
# scripts/as-cpu haswell where the host has AVX-512 (real AVX2 code: 16 ymm
# registers), else through CLIPCL_VW=8; the others through CLIPCL_VW.
# test_gemm runs its --cpu-only subset.
set -euo pipefail
: "${CLIPCL:?}" "${SRC:?}" "${BUILD:?}"
want=${1:?usage: kernels_vw.sh 4|8|16}
native=$("$CLIPCL" devices | grep -o 'kernels in float[0-9]*' | head -1 | grep -o '[0-9]*$')
[ -n "$native" ] || { echo "FAIL: no vector width in 'clipcl devices'"; exit 1; }
tests="test_elementwise test_layernorm test_optim test_clip_head test_embed test_attention test_gemm"
flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
lib=$BUILD/tests/libclipcl_as_cpu.so
fails=0
[ "$want" = "$native" ] && { echo "width $want is this device's own: the op tests run it"; exit 77; }
for vw in $want; do
  if [ "$vw" = 8 ] && [ -f "$lib" ] && [[ " $flags " == *" avx512f "* ]]; then
    how=(env CLIPCL_AS_CPU_LIB="$lib" "$SRC/scripts/as-cpu" haswell)
    label="as-cpu haswell"
  elif [ "$vw" -gt "$native" ]; then
    # vectors wider than the registers are legal but the compiler warns that
    # they change the call ABI: that warning is expected here, not an error
    how=(env -u CLIPCL_KERNEL_WERROR CLIPCL_VW=$vw)
    label="CLIPCL_VW=$vw"
  else
    how=(env CLIPCL_VW=$vw)
    label="CLIPCL_VW=$vw"
  fi
  got=$("${how[@]}" "$CLIPCL" devices | grep -o 'kernels in float[0-9]*' | head -1)
  [ "$got" = "kernels in float$vw" ] || { echo "FAIL: $label gives '$got'"; fails=$((fails + 1)); continue; }
  for t in $tests; do
    args=()
    [ "$t" = test_gemm ] && args=(--cpu-only)
    if out=$(cd "$SRC/tests" && "${how[@]}" "$BUILD/tests/$t" "${args[@]}" 2>&1); then
      echo "ok   $label $t: $(tail -n 1 <<<"$out")"
    else
      echo "FAIL $label $t:"
      grep -E '^FAIL' <<<"$out" | head -20 || tail -n 20 <<<"$out"
      fails=$((fails + 1))
    fi
  done
done
echo "native width $native; $fails failure(s)"
[ "$fails" = 0 ]
