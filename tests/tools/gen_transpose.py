#!/usr/bin/env python3
"""gen_transpose.py: prints the TRANSPOSEV macro of kernels/gemm.cl for a
vector width W (4, 8 or 16): W rows r[0..W) of floatW transposed in place
(r[i].s[c] <-> r[c].s[i]) by log2(W) butterfly stages of constant shuffles,
which LLVM turns into register shuffles. Stage with distance d pairs rows i
and i+d (i & d == 0):
  lo[l] = l & d ? r[i+d][l-d] : r[i][l];   hi[l] = l & d ? r[i+d][l] : r[i][l+d]
Usage: gen_transpose.py W   (paste the output between the markers in gemm.cl)"""
import sys

w = int(sys.argv[1])
lane = "0123456789abcdef"
out = ["#define TRANSPOSEV(r) do { floatv lo_, hi_; \\"]
d = 1
while d < w:
    for i in range(w):
        if i & d:
            continue
        j = i + d
        lo = [f"r[{j}].s{lane[l - d]}" if l & d else f"r[{i}].s{lane[l]}" for l in range(w)]
        hi = [f"r[{j}].s{lane[l]}" if l & d else f"r[{i}].s{lane[l + d]}" for l in range(w)]
        out.append(f"  lo_ = (floatv)({', '.join(lo)}); \\")
        out.append(f"  hi_ = (floatv)({', '.join(hi)}); \\")
        out.append(f"  r[{i}] = lo_; r[{j}] = hi_; \\")
    d *= 2
out.append("} while (0)")
print("\n".join(out))
