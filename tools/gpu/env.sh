# Sourced by the GPU scripts (check.sh, e2e.sh) with $bundle set: unpacks what bundle.sh
# xz-compressed (executables in place, libraries into a scratch folder) and points
# LD_LIBRARY_PATH at the bundle's libraries, the CUDA toolkit's and (fallback) the pip CUDA wheels
# of PyTorch. Sets $py.
for z in "$bundle"/gpu_tests/*.xz "$bundle"/bin/*.xz; do
  [ -f "$z" ] || continue
  python3 -c 'import lzma,sys; open(sys.argv[2],"wb").write(lzma.open(sys.argv[1]).read())' \
    "$z" "${z%.xz}" && chmod +x "${z%.xz}" && rm -f "$z"
done
libdirs="$(cd "$bundle" && pwd)/lib"
if ls "$bundle"/lib/*.xz >/dev/null 2>&1; then
  xzlib=$(mktemp -d)
  for z in "$bundle"/lib/*.xz; do
    python3 -c 'import lzma,sys; open(sys.argv[2],"wb").write(lzma.open(sys.argv[1]).read())' \
      "$z" "$xzlib/$(basename "${z%.xz}")"
  done
  libdirs="$libdirs:$xzlib"
fi
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && libdirs="$libdirs:$d"
done
py=python3
if command -v "$py" >/dev/null 2>&1; then
  for d in $($py - <<'PYEOF' 2>/dev/null
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
seen = set()
for r in roots:
    for pat in ("libcublas*.so*", "libnvrtc*.so*", "libcupti*.so*"):
        for lib in glob.glob(os.path.join(r, "nvidia", "**", pat), recursive=True):
            seen.add(os.path.dirname(lib))
print("\n".join(sorted(seen)))
PYEOF
); do libdirs="$libdirs:$d"; done
fi
export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
