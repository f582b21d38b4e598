#!/bin/bash
# twelfth session, call 3 (H100): part 3 travels (.fa4c: the small wheels, the runtime library); flash-attn-4
# 4.0.0b36 with nvidia-cutlass-dsl 4.8.1 (cu13) installed into /tmp/site; FlashAttention 4's SM90 forward against
# FlexAttention on one captured steady self-attention call of the model (768x1408 and 1080x1920)
export PYTHONUNBUFFERED=1
S=/tmp/site
mkdir -p /tmp/fa4 $S && cp .fa4a/* .fa4b/* .fa4c/* /tmp/fa4/ 2>/dev/null; cp .fa4c/* /tmp/fa4/ && cd /tmp/fa4 && ls -la /tmp/fa4 | tail -n +2 | awk '{print $5, $9}' | tr '\n' ' '; echo
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $S /tmp/fa4/*.whl || exit 1
tar xJf cu13rest.tar.xz -C $S || exit 1
L=$S/nvidia_cutlass_dsl
cat irpart.* | xz -dc > $L/dsl_packages/cutlass/_mlir/_mlir_libs/_cutlass_ir.cu13.cpython-312-x86_64-linux-gnu.so || exit 1
xz -dc rt.xz > $L/cu13/lib/libcute_dsl_runtime.so || exit 1
cd - >/dev/null
export PYTHONPATH=$PWD/src:$S:$L/dsl_packages
python3 -c "import cutlass, flash_attn.cute.interface as I; print('flash-attn-4 imports')" 2>&1 | tail -3
timeout 500 python3 bench/attention_kernels.py --layout captured --sizes 768x1408,1080x1920 \
  --variants flex-lists,fa4,fa4-nors,fa4-noov --flex-variants pipeline --json $OUT/attn3.json 2>&1 \
  | grep -v -i warn | tail -24 | tee $OUT/attn3.txt
