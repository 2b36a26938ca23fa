#!/usr/bin/env bash
# The results campaign of docs/results.md, for a quiet machine: every recipe of
# configs/experiment/ on full MNIST, then the table.
#
#   scripts/run_recipes.sh            # starts in the background; prints where the logs go
#   scripts/run_recipes.sh --wait     # same, in the foreground
#   LANES=2 scripts/run_recipes.sh    # two runs at a time, each with nproc/2 torch threads
#   SET=defaults scripts/run_recipes.sh   # the default job of every model on the offline sample
#   ONLY="cnn_mnist mixer_mnist" scripts/run_recipes.sh   # just these recipes (all their seeds)
#
# LANES=1 (default) runs one recipe after another with every core. On the 2-core CPU, two
# lanes of one thread each finish the campaign ~1.27x sooner (CNN: 2 x 7.5 steps/s side by
# side vs 11.8 steps/s alone with 2 threads), but each run's wall time is longer than
# alone; metrics.json records torch_threads and the table shows it next to the time.
#
# SET=recipes (default): MLP and CNN with seeds 0, 1, 2 (mean ± std); ViT, Mixer,
# autoencoder with seed 0; `data.source=full`. SET=defaults: `model=<name> data.source=sample
# seed=0` for each of the six models (the 5,000-digit sample that works offline).
# Each run goes to outputs/train/<set>-<stamp>/<name>-seed<S>/ with its console output in
# console.log there; a run directory that already holds a finished run is skipped, so
# rerunning with RECIPES_STAMP=<stamp> continues an interrupted campaign (an
# interrupted run resumes from its last.ckpt). At the end the runs' records are kept in
# docs/runs (scripts/results.py --keep-in) and both tables are rebuilt from every kept record.
# The recipes need full MNIST: set LINZOO_DATA (default /work/shared/data) or data.root;
# EXTRA="trainer=gpu" adds overrides to every run (EXTRA changes the command, so such runs
# form their own rows).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/campaign_lib.sh
source scripts/campaign_lib.sh
PYTHON=${PYTHON:-python}
export LINZOO_DATA=${LINZOO_DATA:-/work/shared/data}
STAMP=${RECIPES_STAMP:-$(date -u +%Y-%m-%d_%H-%M-%S)}
SET=${SET:-recipes}
CAMPAIGN=outputs/train/$SET-$STAMP
EXTRA=${EXTRA:-}
LANES=${LANES:-1}
if [[ -z ${OMP_NUM_THREADS:-} ]]; then
  OMP_NUM_THREADS=$(( $(nproc) / LANES > 0 ? $(nproc) / LANES : 1 ))
fi
export OMP_NUM_THREADS
case $SET in
  recipes)  # "<experiment> <seed>"
    GROUP=experiment DATA=full
    RUNS=(  # interleaved so that LANES=2 gets two lanes of about the same length
      "cnn_mnist 0" "transformer_mnist 0" "cnn_mnist 1" "mixer_mnist 0" "cnn_mnist 2"
      "autoencoder_mnist 0" "mlp_mnist 0" "mlp_mnist 1" "mlp_mnist 2"
    ) ;;
  defaults)  # "<model> <seed>"
    GROUP=model DATA=sample
    RUNS=("mlp 0" "cnn 0" "transformer 0" "mixer 0" "autoencoder 0" "lm 0") ;;
  *) echo "SET=$SET: expected recipes or defaults" >&2; exit 2 ;;
esac
if [[ -n ${ONLY:-} ]]; then  # ONLY="cnn_mnist mixer_mnist": just these recipes (or models), in the order above
  kept=()
  for run in "${RUNS[@]}"; do
    [[ " $ONLY " == *" ${run%% *} "* ]] && kept+=("$run")
  done
  (( ${#kept[@]} )) || { echo "ONLY=$ONLY matches none of: ${RUNS[*]}" >&2; exit 2; }
  RUNS=("${kept[@]}")
fi

lane() {  # lane I of LANES: the runs whose index is I modulo LANES, one after another
  local index
  for index in "${!RUNS[@]}"; do
    (( index % LANES == $1 )) || continue
    read -r recipe seed <<<"${RUNS[$index]}"
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
    if "$PYTHON" scripts/train.py "$GROUP=$recipe" "data.source=$DATA" "seed=$seed" $EXTRA \
        "hydra.run.dir=$dir" "${resume[@]}" >>"$dir/console.log" 2>&1; then
      echo "$(date -u +%FT%TZ) done $dir"
    else
      echo "$(date -u +%FT%TZ) FAILED $dir (see $dir/console.log)"
    fi
  done
}

campaign() {
  local i
  for (( i = 0; i < LANES; i++ )); do
    lane "$i" &
  done
  wait
  keep_records
}

start_campaign "${1:-}" "RECIPES_STAMP=$STAMP $0" "RUNS EXTRA LANES GROUP DATA" "lane"
