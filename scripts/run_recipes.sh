#!/usr/bin/env bash
# The results campaign of docs/results.md, for a quiet machine: every recipe of
# configs/experiment/ on full MNIST, one run after another (no two runs share the CPU,
# so wall times are honest), then the table.
#
#   scripts/run_recipes.sh            # starts in the background; prints where the logs go
#   scripts/run_recipes.sh --wait     # same, in the foreground
#
# MLP and CNN: seeds 0, 1, 2 (mean ± std); ViT, Mixer, autoencoder: seed 0. Each run goes
# to outputs/train/recipes-<stamp>/<recipe>-seed<S>/ with its console output in
# console.log there; a run directory that already holds a finished run is skipped, so
# rerunning with RECIPES_STAMP=<stamp> continues an interrupted campaign (an
# interrupted run resumes from its last.ckpt). Needs full MNIST:
# set LINZOO_DATA (default /work/shared/data) or data.root; EXTRA="trainer=gpu" adds
# overrides to every run (EXTRA changes the command, so such runs form their own rows).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
export LINZOO_DATA=${LINZOO_DATA:-/work/shared/data}
STAMP=${RECIPES_STAMP:-$(date -u +%Y-%m-%d_%H-%M-%S)}
CAMPAIGN=outputs/train/recipes-$STAMP
EXTRA=${EXTRA:-}
RUNS=(
  "mlp_mnist 0" "mlp_mnist 1" "mlp_mnist 2"
  "cnn_mnist 0" "cnn_mnist 1" "cnn_mnist 2"
  "transformer_mnist 0" "mixer_mnist 0" "autoencoder_mnist 0"
)

campaign() {
  for entry in "${RUNS[@]}"; do
    read -r recipe seed <<<"$entry"
    dir=$CAMPAIGN/$recipe-seed$seed
    if [[ -f $dir/metrics.json ]]; then
      echo "$(date -u +%FT%TZ) skip $dir (finished)"
      continue
    fi
    resume=()
    if [[ -f $dir/checkpoints/last.ckpt ]]; then  # interrupted: continue from its last epoch
      resume=("ckpt_path=$dir/checkpoints/last.ckpt")
    fi
    mkdir -p "$dir"
    echo "$(date -u +%FT%TZ) start $recipe seed=$seed -> $dir ${resume[*]}"
    # shellcheck disable=SC2086  # EXTRA is a list of overrides
    if "$PYTHON" scripts/train.py "experiment=$recipe" "seed=$seed" "data.source=full" $EXTRA \
        "hydra.run.dir=$dir" "${resume[@]}" >>"$dir/console.log" 2>&1; then
      echo "$(date -u +%FT%TZ) done $dir"
    else
      echo "$(date -u +%FT%TZ) FAILED $dir (see $dir/console.log)"
    fi
  done
  "$PYTHON" scripts/results.py outputs/train/recipes-*/* --readme README.md
}

mkdir -p "$CAMPAIGN"
if [[ ${1:-} == --wait ]]; then
  campaign 2>&1 | tee -a "$CAMPAIGN/campaign.log"
else
  nohup bash -c "$(declare -p RUNS CAMPAIGN EXTRA PYTHON); $(declare -f campaign); campaign" \
    >>"$CAMPAIGN/campaign.log" 2>&1 &
  echo "Campaign running in the background (pid $!): tail -f $CAMPAIGN/campaign.log"
  echo "Continue an interrupted one with RECIPES_STAMP=$STAMP $0"
fi
