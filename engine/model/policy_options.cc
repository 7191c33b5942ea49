#include "engine/model/policy_options.h"

namespace fapo::engine {

LoadOptions PolicyLoadOptions(const config::PolicyOptions& policy) {
  LoadOptions options;
  options.device = policy.device == config::Device::kCuda
                       ? c10::Device(c10::kCUDA)
                       : c10::Device(c10::kCPU);
  switch (policy.dtype) {
    case config::Dtype::kFloat32:
      options.dtype = c10::kFloat;
      break;
    case config::Dtype::kBfloat16:
      options.dtype = c10::kBFloat16;
      break;
    case config::Dtype::kFloat16:
      options.dtype = c10::kHalf;
      break;
  }
  return options;
}

}  // namespace fapo::engine
