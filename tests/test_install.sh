#!/usr/bin/env bash
# test_install.sh: `cmake --install` of this build into a fresh prefix, then
# examples/zeroshot_one.c built against the installed library the two ways
# another project would: with pkg-config (cc ... $(pkg-config --cflags --libs
# clipcl)) and with CMake (find_package(clipcl), shared and COMPONENTS
# static). Each build classifies one image; its ranking must agree with
# `clipcl zeroshot` on the same model, image and classes (top-1 class and
# cosine). The shared library exports only the clipcl_* API, and the prefix
# is relocatable (the .pc and CMake files locate it from their own place).
# Under the sanitizer build the examples get the same -fsanitize flags.
set -u
fails=0
check() { # name, condition command...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
P=$T/prefix
IM=$SRC/tests/data/images

cmake --install "$BUILD" --prefix "$P" >"$T/install.log" 2>&1
check "cmake --install into a new prefix" test $? -eq 0
lib=$(sed -n 's/^libdir=\${prefix}\///p' "$(ls "$P"/lib*/pkgconfig/clipcl.pc "$P"/lib/*/pkgconfig/clipcl.pc 2>/dev/null | head -1)")
check "installed: shared and static library, header, command, .pc, CMake config" bash -c "
  test -e '$P/$lib/libclipcl.so' && test -e '$P/$lib/libclipcl.a' && test -e '$P/include/clipcl.h' &&
  test -x '$P/bin/clipcl' && test -e '$P/$lib/pkgconfig/clipcl.pc' && test -e '$P/$lib/cmake/clipcl/clipclConfig.cmake'"
check "the shared library exports the clipcl_ API only" bash -c "
  syms=\$(nm -D --defined-only '$P/$lib/libclipcl.so' | awk '{print \$3}');
  [ -n \"\$syms\" ] && ! grep -v '^clipcl_' <<<\"\$syms\" && grep -qx clipcl_model_load <<<\"\$syms\""
# relocatable: move the prefix after installing
mv "$P" "$T/moved"
P=$T/moved

SAN=()
if ldd "$P/$lib/libclipcl.so" | grep -q libasan; then SAN=(-fsanitize=address,undefined); fi

# the model, the image and the reference answer from the command
"$P/bin/clipcl" init --model-config clipcl-micro --seed 5 --out "$T/m.safetensors" >/dev/null
mkdir -p "$T/zs/cat" "$T/zs/dog" "$T/zs/red_circle"
cp "$IM/png_rgb8_50x77.png" "$T/zs/cat/"
cp "$IM/jpg_444_50x77.jpg" "$T/zs/dog/"
cp "$IM/png_pal4_45x46.png" "$T/zs/red_circle/"
"$P/bin/clipcl" zeroshot --model "$T/m.safetensors" --data "$T/zs" --predictions "$T/p.csv" >/dev/null
want=$(awk -F, '/png_rgb8_50x77/ { printf "%s %.6f", $3, $4 }' "$T/p.csv")
check "clipcl zeroshot gave a prediction" test -n "$want"
agrees() { # example binary: its best class and cosine equal the command's
  local got
  got=$("$1" "$T/m.safetensors" "$T/zs/cat/png_rgb8_50x77.png" cat dog "red circle" |
        awk 'NR == 1 { c = substr($0, 1, 24); sub(/ +$/, "", c); match($0, /cosine [-+0-9.]+/);
                       printf "%s %.6f", c, substr($0, RSTART + 7, RLENGTH - 7) }')
  echo "     $(basename "$1"): '$got', clipcl zeroshot: '$want'"
  [ -n "$got" ] && [ "$got" = "$want" ]
}

export PKG_CONFIG_PATH=$P/$lib/pkgconfig
cc -std=c11 -Wall -Wextra -Werror "${SAN[@]}" "$SRC/examples/zeroshot_one.c" -o "$T/ex_pkgconfig" \
  $(pkg-config --cflags --libs clipcl) -lm -Wl,-rpath,"$P/$lib" 2>"$T/cc.err"
check "pkg-config build of the example" test -x "$T/ex_pkgconfig"
cat "$T/cc.err"
check "pkg-config example agrees with clipcl zeroshot" agrees "$T/ex_pkgconfig"

for st in OFF ON; do
  flags=${SAN[*]:-}
  cmake -S "$SRC/examples" -B "$T/cm_$st" -DCMAKE_PREFIX_PATH="$P" -DCLIPCL_EXAMPLES_STATIC=$st \
    -DCMAKE_C_FLAGS="$flags -Werror" -DCMAKE_EXE_LINKER_FLAGS="$flags" >"$T/cm_$st.log" 2>&1 &&
    cmake --build "$T/cm_$st" >>"$T/cm_$st.log" 2>&1
  check "CMake build of the example (static: $st)" test -x "$T/cm_$st/zeroshot_one" || cat "$T/cm_$st.log"
  check "CMake example (static: $st) agrees with clipcl zeroshot" agrees "$T/cm_$st/zeroshot_one"
done
check "the static build does not load libclipcl.so" bash -c "! ldd '$T/cm_ON/zeroshot_one' | grep -q libclipcl"

[ $fails -eq 0 ] && echo "all passed" || { echo "$fails failed"; exit 1; }
