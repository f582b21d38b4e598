#!/bin/bash
# source me: flash-attn-4 4.0.0b36 with nvidia-cutlass-dsl 4.8.1 (cu13) from the three carried parts (.fa4a, .fa4b,
# .fa4c, or their copies in /tmp/fa4) into /tmp/site, once per machine; sets PYTHONPATH for the repo and the site
S=/tmp/site
L=$S/nvidia_cutlass_dsl
if [ ! -f $L/cu13/lib/libcute_dsl_runtime.so ]; then
  mkdir -p /tmp/fa4 $S && for d in .fa4a .fa4b .fa4c; do [ -d $d ] && cp $d/* /tmp/fa4/; done
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $S /tmp/fa4/*.whl \
    && tar xJf /tmp/fa4/cu13rest.tar.xz -C $S \
    && cat /tmp/fa4/irpart.* | xz -dc > $L/dsl_packages/cutlass/_mlir/_mlir_libs/_cutlass_ir.cu13.cpython-312-x86_64-linux-gnu.so \
    && xz -dc /tmp/fa4/rt.xz > $L/cu13/lib/libcute_dsl_runtime.so || echo "fa4 site: install failed"
fi
export PYTHONPATH=$PWD/src:$S:$L/dsl_packages PYTHONUNBUFFERED=1
