# Shared by scripts/run_recipes.sh and scripts/run_transfer.sh (sourced, not run): the end of a
# campaign and how it starts. Each script defines CAMPAIGN, PYTHON and a `campaign` function.

keep_records() {  # the campaign's records into docs/runs, then every table rebuilt from all kept records
  "$PYTHON" scripts/results.py "$CAMPAIGN"/* --keep-in docs/runs --out "$CAMPAIGN/results.md"
  "$PYTHON" scripts/results.py docs/runs/*/* --out docs/results.md --readme README.md --transfer docs/finetune.md
}

start_campaign() {  # start_campaign <--wait or not> <how to continue it> <variables> <functions>
  local mode=$1 continue_with=$2 variables=$3 functions=$4
  mkdir -p "$CAMPAIGN"
  if [[ $mode == --wait ]]; then
    campaign 2>&1 | tee -a "$CAMPAIGN/campaign.log"
  else
    # shellcheck disable=SC2086  # lists of names
    nohup bash -c "$(declare -p $variables CAMPAIGN PYTHON); $(declare -f $functions campaign keep_records); campaign" \
      >>"$CAMPAIGN/campaign.log" 2>&1 &
    echo "Campaign running in the background (pid $!): tail -f $CAMPAIGN/campaign.log"
    echo "Continue an interrupted one with $continue_with"
  fi
}
