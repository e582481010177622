#!/usr/bin/env bash
# Fill .whl/ with the wheels the GPU check needs and the GPU machine's image lacks (or has at
# other versions), at the versions in constraints.txt, for its Python 3.12 on x86-64. The image
# keeps its own CUDA torch. The bitsandbytes wheel is repacked with only its CUDA 13 libraries (the
# image's CUDA): 43 MB -> about 3 MB.
# IPython's optional completer (jedi) and the kernel's debugger (debugpy) are left out (both are
# imported only when present). Run on a machine with network, once:
#
#   bash benchmarks/device_site.sh     # then, on the GPU machine: bash benchmarks/device_run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
WHL=.whl
PACKAGES=(
    transformers tokenizers huggingface-hub safetensors peft trl accelerate bitsandbytes
    datasets dill multiprocess rank-bm25
    nbclient nbformat jupyter-client jupyter-core ipykernel ipython traitlets pyzmq tornado comm
    matplotlib-inline parso prompt-toolkit wcwidth pexpect ptyprocess decorator
    stack-data executing asttokens pure-eval ipython-pygments-lexers ipywidgets widgetsnbextension
    jupyterlab-widgets fastjsonschema jsonschema jsonschema-specifications referencing rpds-py
    nest-asyncio platformdirs
)
pins=()
for name in "${PACKAGES[@]}"; do
    pin=$(grep -iE "^${name//-/[-_]}==" constraints.txt || true)
    pins+=("${pin:-$name}")
done
grep -qx "/$WHL/" .git/info/exclude 2>/dev/null || echo "/$WHL/" >> .git/info/exclude
rm -rf "$WHL" && mkdir -p "$WHL"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_26_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$WHL" "${pins[@]}"
python3 - "$WHL" <<'PY'
import sys, zipfile, pathlib
for wheel in pathlib.Path(sys.argv[1]).glob("bitsandbytes-*.whl"):
    slim = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            name = item.filename.rsplit("/", 1)[-1]
            if name.startswith("libbitsandbytes_") and "cuda13" not in name and "cpu" not in name:
                continue  # another CUDA version's (or ROCm's) library
            dst.writestr(item, src.read(item))
    slim.replace(wheel)
PY
du -sh "$WHL"
