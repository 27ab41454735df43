#pragma once
// One validation pass over the options of a command, before anything is allocated or written:
// every error names the option (or the config.json file and field), the value and what is allowed.
#include <cstdint>
#include <initializer_list>
#include <string>

#include "app/commands.h"
#include "app/train.h"
#include "models/protst.h"

namespace pe {

void check_option_int(const char* option, int64_t v, int64_t lo, int64_t hi);
// Finite and in [lo, hi]; with lo_open, strictly above lo.
void check_option_real(const char* option, double v, double lo, double hi, bool lo_open = false);
void check_option_choice(const char* option, const std::string& v, std::initializer_list<const char*> choices);
void check_option_device(const std::string& device);
// "3.28e+15"
std::string format_count(double n);
// "12.3 GiB"
std::string format_bytes(double bytes);
// Parameter count of a ProtST model (encoders, projection heads, fusion, conversion MLPs).
double approx_parameters(const ProtSTConfig& c);
// Bytes that training a model of `params` parameters holds: f32 weights, gradients, two Adam moments.
inline double training_bytes(double params) { return 16.0 * params; }
// Physical memory of this machine (0 when unknown).
double physical_memory_bytes();

// The ESM-2 sizes of --protein-preset (tiny, esm2_8m, esm2_35m, esm2_150m, esm2_650m).
EsmConfig protein_preset_config(const std::string& name);

// `protst train`: every option, and the config.json of --protein-model / --text-model (read here).
void validate_train_options(const TrainOptions& o);
void validate_eval_options(const EvalCommandOptions& o);
void validate_convert_options(const ConvertOptions& o);

}  // namespace pe
