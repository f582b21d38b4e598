# call 10 (H100): the device LQ upsampling (Pillow bicubic, uint8) batched with one tap at a time, against the
# per-frame version before it (call10_old_pillow.py): alone on 8 frames 352x192 -> 1408x768, then the CLI
# (cli_phases.sh, bf16, 3200 frames) with each
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
python3 - <<'PY' | tee $OUT/pillow10.txt
import torch, streamvsr.ops.resize as r
old = dict(r.__dict__); exec(open("docs/runs/2026-11-27e/call10_old_pillow.py").read(), old)
x = torch.randint(0, 256, (8, 3, 192, 352), dtype=torch.uint8, device="cuda")
for name, fn in (("batched, tap by tap", r.pillow_bicubic_uint8), ("per frame (before)", old["pillow_bicubic_uint8"])):
    y = fn(x, (768, 1408))
    assert torch.equal(y, old["pillow_bicubic_uint8"](x, (768, 1408)))
    for _ in range(5): fn(x, (768, 1408))
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize(); s.record()
    for _ in range(50): fn(x, (768, 1408))
    e.record(); torch.cuda.synchronize()
    print(f"{name}: {s.elapsed_time(e) / 50:.3f} ms per 8 frames (GPU time, queued back to back)")
PY
python3 bench/cli_run.py prepare --frames 3200
A="--model flashvsr --weights /tmp/w13 --compile --progress json --overwrite --encoder-opt preset=veryfast"
python3 -m streamvsr.cli.main upscale /tmp/warm.mp4 -o /tmp/warm.out.mp4 $A > /dev/null 2>&1
python3 -m streamvsr.cli.main upscale /tmp/in.mp4 -o /tmp/out.mp4 $A > /tmp/p_new.jsonl 2>/dev/null
python3 bench/cli_run.py rate /tmp/p_new.jsonl batched | tee $OUT/cli10.txt
python3 -c "import streamvsr.ops.resize as r; exec(open('docs/runs/2026-11-27e/call10_old_pillow.py').read(), r.__dict__); import sys; sys.argv[0] = 'streamvsr'; from streamvsr.cli.main import main; main()" \
  upscale /tmp/in.mp4 -o /tmp/out.mp4 $A > /tmp/p_old.jsonl 2>/dev/null
python3 bench/cli_run.py rate /tmp/p_old.jsonl per-frame | tee -a $OUT/cli10.txt
