#!/usr/bin/env bash
# The MNIST -> Fashion-MNIST campaign of docs/results.md ("Transfer"), issue 21:
# the ViT and the CNN, each trained on full MNIST, then on full Fashion-MNIST four ways,
# with the same epochs and seeds:
#   scratch   no init_from                         (the baseline)
#   finetune  init_from=<MNIST run>                (everything trains)
#   probe     + 'finetune.train_roles=[head]'      (a linear probe: only the head trains)
#   lora      + adapter=lora rank 8, alpha 16 on q,v; the head trains too (ViT only: the CNN's
#             only factory Linear is its head, its convolutions are no Linears)
#
#   scripts/run_transfer.sh            # in the background; prints where the log goes
#   scripts/run_transfer.sh --wait     # in the foreground
#   SEEDS="0 1 2" EPOCHS=3 scripts/run_transfer.sh   # the defaults
#   MODELS=vit SEEDS="0 1" VIT_SOURCE_EPOCHS=4 scripts/run_transfer.sh   # a shorter ViT campaign
#
# Runs go to outputs/train/transfer-<stamp>/<model>-<variant>-seed<S>/ (console.log inside); a
# finished run is skipped, so TRANSFER_STAMP=<stamp> continues an interrupted campaign. At the
# end the records are kept in docs/runs and docs/results.md is rebuilt (its Transfer table).
# Needs full MNIST (LINZOO_DATA, default /work/shared/data) and full Fashion-MNIST (Debian's
# dataset-fashion-mnist, or torchvision's files under LINZOO_DATA/data.root).
set -euo pipefail
set -f  # no globbing: overrides such as finetune.train_roles=[head] are words, not patterns
cd "$(dirname "$0")/.."
# shellcheck source=scripts/campaign_lib.sh
source scripts/campaign_lib.sh
PYTHON=${PYTHON:-python}
export LINZOO_DATA=${LINZOO_DATA:-/work/shared/data}
STAMP=${TRANSFER_STAMP:-$(date -u +%Y-%m-%d_%H-%M-%S)}
CAMPAIGN=outputs/train/transfer-$STAMP
SEEDS=${SEEDS:-0 1 2}
EPOCHS=${EPOCHS:-3}
MODELS=${MODELS:-cnn vit}
VIT_SOURCE_EPOCHS=${VIT_SOURCE_EPOCHS:-10}  # the ViT's MNIST run: model=transformer's own 10 epochs

# Each model: its MNIST recipe (the source), and the same recipe on Fashion-MNIST (the target).
declare -A SOURCE=(
  [cnn]="experiment=cnn_fast data.source=full seed=0"
  [vit]="model=transformer data.source=full trainer.max_epochs=$VIT_SOURCE_EPOCHS seed=0"
)
declare -A TARGET=(
  [cnn]="experiment=cnn_fast data=fashion_mnist trainer.max_epochs=$EPOCHS"
  [vit]="model=transformer data=fashion_mnist trainer.max_epochs=$EPOCHS"
)
declare -A VARIANTS=([cnn]="scratch finetune probe" [vit]="scratch finetune probe lora")

run() {  # run <dir> <overrides...>: one training, skipped when finished
  local dir=$1
  shift
  if [[ -f $dir/metrics.json ]]; then
    echo "$(date -u +%FT%TZ) skip $dir (finished)"
    return
  fi
  mkdir -p "$dir"
  echo "$(date -u +%FT%TZ) start $dir: $*"
  if "$PYTHON" scripts/train.py "$@" "hydra.run.dir=$dir" >>"$dir/console.log" 2>&1; then
    echo "$(date -u +%FT%TZ) done $dir"
  else
    echo "$(date -u +%FT%TZ) FAILED $dir (see $dir/console.log)"
  fi
}

variant_overrides() {  # variant_overrides <variant> <source dir>
  case $1 in
    scratch) ;;
    finetune) echo "init_from=$2" ;;
    probe) echo "init_from=$2 finetune.train_roles=[head]" ;;
    lora) echo "init_from=$2 adapter=lora adapter.rank=8 adapter.alpha=16 adapter.roles=[q,v]" ;;
  esac
}

campaign() {
  local model seed variant source
  for model in $MODELS; do
    source=$CAMPAIGN/$model-source-seed0
    # shellcheck disable=SC2086  # the overrides are lists
    run "$source" ${SOURCE[$model]}
    for seed in $SEEDS; do
      for variant in ${VARIANTS[$model]}; do
        # shellcheck disable=SC2046,SC2086
        run "$CAMPAIGN/$model-$variant-seed$seed" ${TARGET[$model]} $(variant_overrides "$variant" "$source") "seed=$seed"
      done
    done
  done
  keep_records
}

start_campaign "${1:-}" "TRANSFER_STAMP=$STAMP $0" "SOURCE TARGET VARIANTS SEEDS MODELS" "run variant_overrides"
