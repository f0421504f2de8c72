#!/usr/bin/env bash
# Everything a session with a GPU machine should run, in as few device calls as possible.
#
#   here:    bash bench/gpu_wheels.sh            (once; fills .gpu-wheels/)
#   device:  run(command="bash bench/gpu_session.sh tests throughput", carry=[".gpu-wheels"])
#            run(command="bash bench/gpu_session.sh e2e topk", carry=[".gpu-wheels"])
#
# Steps: tests (pytest -m gpu), throughput (bench/throughput.py --gpu), e2e (bench/end_to_end.py
# --gpu, 500 features, 2 s judge), topk (bench/topk_speed.py --full-gemma). Each step's output is
# printed and kept in $OUT/<step>.txt as it runs. One device call may run 10 minutes; the steps are
# sized to take a few minutes each, and a call cut short still returns what $OUT holds by then.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-session}
mkdir -p "$OUT"
if [ -d .gpu-wheels ]; then
    python3 -m pip install -q --no-index --find-links .gpu-wheels \
        diskcache tenacity openai pydantic textual textual-plotext pytest-asyncio 2>&1 | tail -3
    # Our transformers version, without touching torch or tokenizers the image brings.
    python3 -m pip install -q --no-index --no-deps --find-links .gpu-wheels .gpu-wheels/transformers-*.whl 2>&1 | tail -3
fi
export PYTHONPATH=$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
    | tee -a "$OUT/device.txt"
status=0
for step in "${@:-tests}"; do
    case $step in
        tests) cmd=(python3 -m pytest -q -m gpu tests/steering) ;;
        throughput) cmd=(python3 bench/throughput.py --gpu) ;;
        e2e) cmd=(python3 bench/end_to_end.py --gpu --features 500 --latency 2 --rounds 3 --concurrency 64) ;;
        topk) cmd=(python3 bench/topk_speed.py --device cuda --full-gemma) ;;
        *) echo "unknown step $step: use tests, throughput, e2e or topk" >&2; exit 2 ;;
    esac
    echo "== $step: ${cmd[*]}" | tee "$OUT/$step.txt"
    start=$(date +%s)
    "${cmd[@]}" 2>&1 | tee -a "$OUT/$step.txt"
    rc=${PIPESTATUS[0]}
    echo "== $step: exit $rc after $(( $(date +%s) - start )) s" | tee -a "$OUT/$step.txt"
    [ "$rc" -eq 0 ] || status=$rc
done
exit $status
