# ruff: noqa
"""Run the streamvsr CLI in this process under cProfile; write the top functions (cumulative and own time) and
torch._dynamo's compile times to PREFIX.txt.  python3 prof_cli.py PREFIX <streamvsr args...>"""

import cProfile
import pstats
import sys
import time

prefix, args = sys.argv[1], sys.argv[2:]
from streamvsr.cli.main import cli

prof = cProfile.Profile()
t0 = time.perf_counter()
prof.enable()
try:
    cli.main(args, standalone_mode=False)
finally:
    prof.disable()
    wall = time.perf_counter() - t0
    with open(prefix + ".txt", "w") as f:
        f.write(f"wall {wall:.2f}s\n")
        try:
            import torch._dynamo.utils as u

            f.write(str(u.compile_times(repr="str")) + "\n")
        except Exception as e:  # noqa
            f.write(f"compile_times: {e}\n")
        try:
            for m in u.get_compilation_metrics():
                f.write(
                    f"{m.compile_id} {m.co_name} {str(m.co_filename)[-40:]}:{m.co_firstlineno} "
                    f"frame {m.entire_frame_compile_time_s} backend {m.backend_compile_time_s} "
                    f"ops {m.graph_op_count} guards {m.guard_count} fx_hit {m.inductor_fx_local_cache_hit_count} "
                    f"aot_hit {m.aotautograd_local_cache_hit_count} fail {m.fail_type}\n"
                )
        except Exception as e:  # noqa
            f.write(f"metrics: {e}\n")
        st = pstats.Stats(prof, stream=f)
        st.sort_stats("cumulative").print_stats(70)
        st.sort_stats("tottime").print_stats(40)
    prof.dump_stats(prefix + ".prof")
