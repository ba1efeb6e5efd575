/* ref_attn.h: plain C multi-head attention (double throughout), the
 * reference for cc_attention_fwd/bwd. Layouts as in src/ops/ops.h:
 * qkv (B,T,3C) packed q|k|v, heads D = C/H wide; out (B,T,C); att (B,H,T,T). */
#ifndef REF_ATTN_H
#define REF_ATTN_H
/* out = attention(qkv); att (may be NULL) receives the probabilities. */
void ref_attention_fwd(double *out, double *att, const float *qkv, int B, int T, int C, int H, int causal);
/* dqkv (B,T,3C) = d(sum(dout .* out))/dqkv (not accumulated). */
void ref_attention_bwd(double *dqkv, const float *dout, const float *qkv, int B, int T, int C, int H,
                       int causal);
#endif
