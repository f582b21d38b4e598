#!/bin/bash
# twelfth session, call 16: part 3 and the install into /tmp/site
source docs/runs/2026-11-27l/fa4_site.sh
python3 -c "from streamvsr.models.flashvsr import fa4; print('flash-attn-4 importable:', fa4.installed())"
