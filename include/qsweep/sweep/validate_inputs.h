#pragma once
// Every input a sweep's units will read, checked before any unit is handed out (`qsweep plan` and
// the start of `qsweep run`), so a broken file fails the job at once, named, instead of failing
// every unit one by one. Each check is the loader's own (model/, tokenizer/, eval/): the units
// run the same code later, so what passes here loads there.
#include "qsweep/sweep/sweep_spec.h"

#include <string>

namespace qsweep {

// Throws the first problem found, naming the file and key or tensor:
//  - every model directory (the sweep's and each config's `model`): config.json and
//    generation_config.json, the safetensors headers (offsets inside the file, byte counts) and
//    every tensor the config needs, present, a float, of its shape (check_model_weights);
//  - the tokenizer: tokenizer.json and tokenizer_config.json as the units load them, and its
//    vocabulary within every model's embedding table;
//  - the CoQA file, when the sweep evaluates.
// Reads headers and small files only; no weight is loaded.
void validate_sweep_inputs(const SweepSpec& spec);

// The device this rank's units would run on, chosen as they choose it (bench/device.h): a job
// asking for `cuda` on a machine without a GPU fails here, and so does one whose batch sizes and
// token counts would need a KV cache larger than the device's available memory. Returns the
// device's description.
std::string validate_device(const SweepSpec& spec, int local_rank);

}  // namespace qsweep
