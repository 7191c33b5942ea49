#include "trainer/comm/communicator.h"

#include <ATen/ATen.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "services/status/status_macros.h"

namespace fapo::trainer {

std::string Communicator::Where(const char* operation) const {
  return absl::StrCat(backend_name(), " rank ", rank(), "/", world_size(), ": ",
                      operation);
}

absl::Status ValidateTensors(const Communicator& communicator,
                             const char* operation,
                             const std::vector<at::Tensor>& tensors,
                             bool require_floating) {
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& tensor = tensors[i];
    auto invalid = [&](const char* why) {
      return absl::InvalidArgumentError(
          absl::StrCat(communicator.backend_name(), " rank ",
                       communicator.rank(), "/", communicator.world_size(),
                       ": ", operation, ": tensor ", i, " ", why));
    };
    if (!tensor.defined()) return invalid("is undefined");
    if (tensor.layout() != at::kStrided) return invalid("is not dense");
    if (!tensor.is_contiguous()) return invalid("is not contiguous");
    if (require_floating && !at::isFloatingType(tensor.scalar_type())) {
      return invalid("is not floating point (a mean needs it)");
    }
  }
  return absl::OkStatus();
}

absl::Status Communicator::AllReduceMean(std::vector<at::Tensor>& tensors) {
  RETURN_IF_ERROR(ValidateTensors(*this, "AllReduceMean", tensors,
                                  /*require_floating=*/true));
  RETURN_IF_ERROR(AllReduceSum(tensors));
  if (world_size() == 1) return absl::OkStatus();
  try {
    for (at::Tensor& tensor : tensors) tensor.div_(world_size());
  } catch (const std::exception& error) {
    return absl::InternalError(
        absl::StrCat(Where("AllReduceMean"), ": ", error.what()));
  }
  return absl::OkStatus();
}

absl::Status LocalCommunicator::AllReduceSum(std::vector<at::Tensor>& tensors) {
  return ValidateTensors(*this, "AllReduceSum", tensors);
}

absl::Status LocalCommunicator::Broadcast(std::vector<at::Tensor>& tensors,
                                          int root) {
  if (root != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where("Broadcast"), ": root ", root, " is not a rank"));
  }
  return ValidateTensors(*this, "Broadcast", tensors);
}

absl::Status LocalCommunicator::AllGather(const at::Tensor& input,
                                          std::vector<at::Tensor>* outputs) {
  RETURN_IF_ERROR(ValidateTensors(*this, "AllGather", {input}));
  outputs->assign(1, input.clone());
  return absl::OkStatus();
}

absl::Status GradientAverager::AllReduce(Communicator& communicator,
                                         std::vector<at::Tensor>& grads) {
  const char* kOperation = "AllReduceGradients";
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!grads[i].defined() ||
        (options_.average && !at::isFloatingType(grads[i].scalar_type()))) {
      return absl::InvalidArgumentError(absl::StrCat(
          communicator.backend_name(), " rank ", communicator.rank(), "/",
          communicator.world_size(), ": ", kOperation, ": gradient ", i,
          grads[i].defined() ? " is not floating point" : " is undefined"));
    }
  }
  if (communicator.world_size() == 1 || grads.empty()) {
    return absl::OkStatus();
  }
  // Buckets are runs of consecutive gradients of one dtype and device; the
  // cut points depend only on shapes and dtypes, so every rank cuts the
  // same way and the bucket all-reduces pair up.
  try {
    size_t begin = 0;
    size_t bucket_index = 0;
    while (begin < grads.size()) {
      size_t end = begin;
      int64_t bucket_bytes = 0;
      int64_t bucket_numel = 0;
      while (end < grads.size()) {
        const at::Tensor& grad = grads[end];
        const int64_t bytes = grad.numel() * grad.element_size();
        if (end > begin && (grad.scalar_type() != grads[begin].scalar_type() ||
                            grad.device() != grads[begin].device() ||
                            bucket_bytes + bytes > options_.bucket_bytes)) {
          break;
        }
        bucket_bytes += bytes;
        bucket_numel += grad.numel();
        ++end;
      }
      if (buckets_.size() <= bucket_index) buckets_.resize(bucket_index + 1);
      at::Tensor& bucket = buckets_[bucket_index];
      if (!bucket.defined() || bucket.numel() != bucket_numel ||
          bucket.scalar_type() != grads[begin].scalar_type() ||
          bucket.device() != grads[begin].device()) {
        bucket = at::empty({bucket_numel}, grads[begin].options());
      }
      int64_t offset = 0;
      for (size_t i = begin; i < end; ++i) {
        const int64_t numel = grads[i].numel();
        bucket.narrow(0, offset, numel).view(grads[i].sizes()).copy_(grads[i]);
        offset += numel;
      }
      std::vector<at::Tensor> one = {bucket};
      RETURN_IF_ERROR(communicator.AllReduceSum(one));
      if (options_.average) bucket.div_(communicator.world_size());
      offset = 0;
      for (size_t i = begin; i < end; ++i) {
        const int64_t numel = grads[i].numel();
        grads[i].copy_(bucket.narrow(0, offset, numel).view(grads[i].sizes()));
        offset += numel;
      }
      begin = end;
      ++bucket_index;
    }
  } catch (const std::exception& error) {
    return absl::InternalError(absl::StrCat(
        communicator.backend_name(), " rank ", communicator.rank(), "/",
        communicator.world_size(), ": ", kOperation, ": ", error.what()));
  }
  return absl::OkStatus();
}

absl::Status AllReduceGradients(Communicator& communicator,
                                std::vector<at::Tensor>& grads,
                                const GradientBucketOptions& options) {
  GradientAverager averager(options);
  return averager.AllReduce(communicator, grads);
}

BucketedGradientSync::BucketedGradientSync(Communicator* communicator,
                                           int64_t bucket_bytes)
    : communicator_(communicator),
      averager_(GradientBucketOptions{bucket_bytes, /*average=*/false}) {}

absl::Status BucketedGradientSync::AllReduceSum(
    std::vector<at::Tensor>& tensors) {
  return averager_.AllReduce(*communicator_, tensors);
}

absl::Status AllReduceScalars(Communicator& communicator,
                              std::vector<double>& values) {
  if (values.empty()) return absl::OkStatus();
  std::vector<at::Tensor> buffer;
  try {
    buffer.push_back(
        at::tensor(at::ArrayRef<double>(values), at::dtype(at::kDouble)));
  } catch (const std::exception& error) {
    return absl::InternalError(
        absl::StrCat("AllReduceScalars: ", error.what()));
  }
  RETURN_IF_ERROR(communicator.AllReduceSum(buffer));
  const double* summed = buffer[0].data_ptr<double>();
  for (size_t i = 0; i < values.size(); ++i) values[i] = summed[i];
  return absl::OkStatus();
}

}  // namespace fapo::trainer
