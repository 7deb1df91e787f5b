# Sourced by the GPU scripts: the made Llama-3.2-1B-shaped model ($WORK/m1b) and 500 CoQA-format
# stories ($WORK/coqa500.json) they measure on, made once and kept in build-gpu/study/. With
# PRESET naming another make-model preset, that shape too, in $WORK/$PRESET. $BASE is the
# directory of the model measured (m1b, or the preset's) and $PREFIX what the names of its
# quantized copies start with.
WORK=$PWD/build-gpu/study     # absolute: the job resolves relative paths against its own dir
mkdir -p $WORK
TOK=.cache/tokenizers/llama3/tokenizer.json
make_study_model() {  # preset, directory under $WORK, log file
  [ -s $WORK/$2/model.safetensors ] || build-gpu/qsweep make-model --preset $1 --tokenizer $TOK \
    --seed 1 --dtype bf16 --outliers 4 --out $WORK/$2 > "$OUT/$3" 2>&1
}
make_study_model llama-3.2-1b m1b make-model.log
BASE=m1b PREFIX=
if [ -n "${PRESET:-}" ] && [ "$PRESET" != llama-3.2-1b ]; then
  BASE=$PRESET PREFIX=$PRESET-
  make_study_model $PRESET $PRESET make-model-$PRESET.log
fi
[ -s $WORK/coqa500.json ] || python3 tests/parity/replicate_coqa.py \
  data/coqa/coqa_dev_format_sample_10stories.json 500 $WORK/coqa500.json
