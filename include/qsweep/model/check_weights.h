#pragma once
// The checks load_model (model.h) makes before it copies any weight, callable on their own: what
// `qsweep plan` and the start of `qsweep run` use to refuse a broken model before any work.
#include <string>

namespace qsweep {

// DIR/config.json, the safetensors headers (offsets inside the files, byte counts), and every
// tensor the config needs present, a float, of the shape config.json implies. Cheap: it reads
// headers, not weights. load_model runs the same check first.
void check_model_weights(const std::string& dir);

}  // namespace qsweep
