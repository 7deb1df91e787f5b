# Sourced by the GPU scripts: the made Llama-3.2-1B-shaped model ($WORK/m1b) and 500 CoQA-format
# stories ($WORK/coqa500.json) they measure on, made once and kept in build-gpu/study/; with
# PRESET set to another make-model preset, that shape too, in $WORK/$PRESET.
WORK=$PWD/build-gpu/study     # absolute: the job resolves relative paths against its own dir
mkdir -p $WORK
TOK=.cache/tokenizers/llama3/tokenizer.json
[ -s $WORK/m1b/model.safetensors ] || build-gpu/qsweep make-model --preset llama-3.2-1b \
  --tokenizer $TOK --seed 1 --dtype bf16 --outliers 4 --out $WORK/m1b > "$OUT/make-model.log" 2>&1
[ -s $WORK/coqa500.json ] || python3 tests/parity/replicate_coqa.py \
  data/coqa/coqa_dev_format_sample_10stories.json 500 $WORK/coqa500.json
if [ -n "${PRESET:-}" ] && [ "$PRESET" != llama-3.2-1b ] && [ ! -s $WORK/$PRESET/model.safetensors ]; then
  build-gpu/qsweep make-model --preset $PRESET --tokenizer $TOK --seed 1 --dtype bf16 --outliers 4 \
    --out $WORK/$PRESET > "$OUT/make-model-$PRESET.log" 2>&1
fi
