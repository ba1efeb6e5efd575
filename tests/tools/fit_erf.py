#!/usr/bin/env python3
"""fit_erf.py: derives the rational approximation of erf used by the GELU
kernels (kernels/elementwise.cl ERF_RATIONAL): erf(x) ~ x P(x^2) / Q(x^2) on
[0, 4] (clamped beyond: erf(4) = 1 - 1.5e-8), P of degree 6 and Q of degree
4 in x^2 with Q(0) = 1, fitted by iteratively reweighted least squares
towards the minimax error. Prints the coefficients and the largest absolute
error in double and in a float32 Horner evaluation.
Run: /usr/bin/python3 tests/tools/fit_erf.py   (numpy)"""
import math

import numpy as np

xs = np.linspace(1e-6, 4.0, 20000)
ef = np.array([math.erf(x) for x in xs])
t = xs * xs
NP, NQ = 7, 4
w = np.ones_like(xs)
for _ in range(30):
    # x P(t) - erf(x) (Q(t) - 1) = erf(x): linear in the coefficients
    A = np.hstack([np.stack([xs * t**i for i in range(NP)], 1), np.stack([-ef * t**j for j in range(1, NQ + 1)], 1)])
    sol, *_ = np.linalg.lstsq(A * w[:, None], ef * w, rcond=None)
    p, q = sol[:NP], np.concatenate([[1.0], sol[NP:]])
    err = xs * np.polyval(p[::-1], t) / np.polyval(q[::-1], t) - ef
    w = np.maximum(w * np.abs(err) ** 0.5 / (w * np.abs(err) ** 0.5).max(), 1e-3)
x32 = xs.astype(np.float32)
t32 = x32 * x32
P, Q = np.float32(p[-1]), np.float32(q[-1])
for c in p[-2::-1]:
    P = P * t32 + np.float32(c)
for c in q[-2::-1]:
    Q = Q * t32 + np.float32(c)
e32 = np.abs(np.minimum(x32 * P / Q, np.float32(1)).astype(np.float64) - ef).max()
print("P (x^0..x^12):", ", ".join("%.9ef" % c for c in p))
print("Q (x^0..x^8): ", ", ".join("%.9ef" % c for c in q))
print("max |error|: %.2e (double), %.2e (float32 Horner)" % (np.abs(err).max(), e32))
