#!/usr/bin/env bash
# comm_volume.sh: per-step communication of one rank in data-parallel
# training, from the parameter count the code computes (`clipcl info`), as a
# markdown table over R = 2 .. 1024 ranks, B samples per rank:
#   features, CLIP: all-gather of normalised image + text features and the
#     reduce-scatter of their gradients: 2 x 2 B E (R-1) floats
#   features, SigLIP: text blocks around the ring and their gradients back:
#     2 B E (R-1) floats
#   gradients: reduce-scatter + all-gather (= a ring all-reduce): 2 P (R-1)/R
#   ZeRO-1: reduce-scatter of gradients + all-gather of parameters: the same
#     2 P (R-1)/R; AdamW moments per rank 2 P / R floats instead of 2 P
# Bandwidth-optimal (ring) algorithms send and receive these amounts; the
# time is the larger of the two at LINK_GBIT (default 100 Gb/s) per direction.
#   bench/comm_volume.sh [CONFIG] [B] [LINK_GBIT]   (default ViT-B-32 256 100)
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-ViT-B-32} B=${2:-256} LINK=${3:-100}
info=$(./build/clipcl info "$CONFIG")
P=$(awk '/^parameters/ {print $2}' <<< "$info")
E=$(awk '/^embed_dim/ {print $2}' <<< "$info")
awk -v P="$P" -v E="$E" -v B="$B" -v L="$LINK" 'BEGIN {
  bw = L * 1e9 / 8; MB = 1e6
  printf "%s parameters (P), embed_dim %d (E), %d samples per rank (B), %g Gb/s links\n\n", P, E, B, L
  print "| ranks R | global batch | features, CLIP | features, SigLIP | gradients (all-reduce or ZeRO-1) | total, CLIP | time at " L " Gb/s | AdamW moments per rank (ZeRO-1 / without) |"
  print "|---:|---:|---:|---:|---:|---:|---:|---:|"
  for (R = 2; R <= 1024; R *= 2) {
    fc = 4 * B * E * (R - 1) * 4; fs = 2 * B * E * (R - 1) * 4; g = 2 * P * (R - 1) / R * 4
    printf "| %d | %d | %.1f MB | %.1f MB | %.1f MB | %.1f MB | %.0f ms | %.1f MB / %.1f MB |\n", R, R * B, fc / MB, fs / MB, g / MB,
           (fc + g) / MB, (fc + g) / bw * 1000, 2 * P * 4 / R / MB, 2 * P * 4 / MB
  }
}'
