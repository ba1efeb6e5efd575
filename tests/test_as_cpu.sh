#!/usr/bin/env bash
# test_as_cpu.sh: scripts/as-cpu on an AVX-512 host: PoCL compiles for the
# haswell class (the device name says so and kernels come in float8), and,
# where the kernel offers CPUID faulting, every library's CPUID answers
# without AVX-512 (NumPy's own dispatch, read from Python, says AVX512F is
# off and AVX2 on), while the same probe outside as-cpu sees AVX512F.
# Skipped (77) on hosts without AVX-512 or without AVX2/FMA.
set -u
flags=$(grep -m1 '^flags' /proc/cpuinfo)
case " $flags " in *" avx512f "*) ;; *) echo "skip: no AVX-512 here (nothing to emulate)"; exit 77 ;; esac
case " $flags " in *" avx2 "*" fma "*|*" fma "*" avx2 "*) ;; *) echo "skip: no AVX2/FMA"; exit 77 ;; esac
fails=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi; }
AS=(env CLIPCL_AS_CPU_LIB="$BUILD/tests/libclipcl_as_cpu.so" "$SRC/scripts/as-cpu" haswell)
dev=$("${AS[@]}" "$CLIPCL" devices 2>&1)
check "PoCL compiles for haswell under as-cpu" '[[ "$dev" == *haswell* && "$dev" == *float8* ]]'
probe='from numpy.core._multiarray_umath import __cpu_features__ as f; print(int(f["AVX512F"]), int(f["AVX2"]))'
case " $flags " in
  *" cpuid_fault "*)
    check "NumPy sees AVX-512 outside as-cpu" '[ "$(/usr/bin/python3 -c "$probe")" = "1 1" ]'
    check "NumPy sees AVX2 without AVX-512 under as-cpu (CPUID trapped)" '[ "$("${AS[@]}" /usr/bin/python3 -c "$probe")" = "0 1" ]'
    check "CLIPCL_AS_CPU_CPUID=0 leaves CPUID alone" \
      '[ "$(CLIPCL_AS_CPU_CPUID=0 "${AS[@]}" /usr/bin/python3 -c "$probe")" = "1 1" ]' ;;
  *) echo "skip: no CPUID faulting here (the CPUID part is not tested)" ;;
esac
echo "$fails failed"
[ $fails -eq 0 ]
