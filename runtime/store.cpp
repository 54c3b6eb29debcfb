#include "runtime/store.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "ir/layout.h"
#include "runtime/status_error.h"

namespace kvc::runtime {

namespace {

void check_shape(const ir::Module& m) {
  const ir::ModelShape& s = m.model;
  if (s.q_heads <= 0 || s.kv_heads <= 0 || s.head_dim <= 0)
    fail(KVC_ERROR_PLAN, "plan: q_heads, kv_heads and head_dim must be positive");
  if (s.q_heads % s.kv_heads != 0)
    fail(KVC_ERROR_PLAN, "plan: q_heads " + std::to_string(s.q_heads) + " is not a multiple of kv_heads " +
                             std::to_string(s.kv_heads));
  if (m.workload.context <= 0) fail(KVC_ERROR_PLAN, "plan: workload.context must be positive");
  if (m.workload.batch <= 0 || m.workload.batch > (1 << 20))
    fail(KVC_ERROR_PLAN, "plan: workload.batch must be in [1, 2^20]");
  if (m.layers.empty()) fail(KVC_ERROR_PLAN, "plan: no layer plans");
  for (std::size_t i = 0; i < m.layers.size(); ++i)
    if (m.layers[i].index != static_cast<int>(i))
      fail(KVC_ERROR_PLAN, "plan: layer plan " + std::to_string(i) + " has index " +
                               std::to_string(m.layers[i].index));
}

}  // namespace

Store::Store(ir::Module module, int threads) : Store(std::move(module), StoreOptions{threads}) {}

Store::Store(ir::Module module, const StoreOptions& options)
    : module_(std::move(module)), backend_(options.backend), pool_(std::max(options.threads, 1)) {
  if (options.first_sequence_id < 1) fail(KVC_ERROR_INVALID_ARGUMENT, "sequence ids start at 1 or above");
  next_id_ = options.first_sequence_id;
  if (backend_ != KVC_BACKEND_REFERENCE && backend_ != KVC_BACKEND_LLVM_JIT && backend_ != KVC_BACKEND_LLVM_AOT)
    fail(KVC_ERROR_INVALID_ARGUMENT, "unknown backend " + std::to_string(static_cast<int>(backend_)));
  // Only the JIT generates int8-dot kernels; elsewhere the flag would be silently ignored.
  if (options.int8_dot && backend_ != KVC_BACKEND_LLVM_JIT)
    fail(KVC_ERROR_INVALID_ARGUMENT, "int8_dot needs the llvm-jit backend");
  check_shape(module_);
  const int n = static_cast<int>(module_.layers.size());
  for (int l = 0; l < n; ++l) layers_.push_back(std::make_unique<LayerStore>(module_, l));
  host_kernel_.assign(static_cast<std::size_t>(n), 0);
  host_append_.assign(static_cast<std::size_t>(n), 0);
  // After the layer stores have checked the plan, so a bad plan reports its
  // storage error rather than a code generator's.
  if (backend_ == KVC_BACKEND_LLVM_JIT) {
    jit_ = std::make_unique<JitKernels>(module_, options.isa, options.int8_dot);
    for (int l = 0; l < n; ++l) {
      layers_[static_cast<std::size_t>(l)]->set_append_encoder(jit_->layer(l).append);
      install_own_kernel(l);
    }
  }
  basis_group_.resize(static_cast<std::size_t>(n));
  for (int l = 0; l < n; ++l) {
    const ir::LowRank& lr = module_.layers[static_cast<std::size_t>(l)].lowrank;
    std::vector<int>& group = basis_group_[static_cast<std::size_t>(l)];
    if (lr.rank > 0 && lr.sharing == ir::BasisSharing::CrossLayer) {
      for (int o = 0; o < n; ++o) {
        const ir::LowRank& other = module_.layers[static_cast<std::size_t>(o)].lowrank;
        if (other.sharing != ir::BasisSharing::CrossLayer || other.basis_group != lr.basis_group || other.rank == 0)
          continue;
        if (other.rank != lr.rank || other.source != lr.source)
          fail(KVC_ERROR_PLAN, "plan: layers " + std::to_string(l) + " and " + std::to_string(o) +
                                   " share basis group " + std::to_string(lr.basis_group) +
                                   " with different ranks or basis sources");
        group.push_back(o);
      }
    } else {
      group.push_back(l);
    }
    layers_[static_cast<std::size_t>(l)]->set_basis_owner(layers_[static_cast<std::size_t>(group.front())].get());
  }
  for (std::int64_t s = module_.workload.batch - 1; s >= 0; --s) free_slots_.push_back(static_cast<int>(s));
}

std::shared_ptr<Store::Sequence> Store::find(kvc_seq seq) const {
  std::lock_guard lock(mutex_);
  auto it = sequences_.find(seq);
  if (it == sequences_.end()) fail(KVC_ERROR_INVALID_ARGUMENT, "unknown sequence " + std::to_string(seq));
  return it->second;
}

std::unique_lock<std::mutex> Store::lock_live(Sequence& s, kvc_seq seq) {
  std::unique_lock lock(s.mutex);
  if (s.freed) fail(KVC_ERROR_INVALID_ARGUMENT, "unknown sequence " + std::to_string(seq) + " (freed during the call)");
  return lock;
}

LayerStore& Store::layer_at(int layer) const {
  if (layer < 0 || layer >= static_cast<int>(layers_.size()))
    fail(KVC_ERROR_INVALID_ARGUMENT, "unknown layer " + std::to_string(layer) + " (the plan has " +
                                         std::to_string(layers_.size()) + " layers)");
  return *layers_[static_cast<std::size_t>(layer)];
}

const LayerStore& Store::layer_store(int layer) const { return layer_at(layer); }

int Store::slot_of(kvc_seq seq) const { return find(seq)->slot; }

kvc_seq Store::take_id() {
  // Counting on past INT32_MAX would be undefined; starting again at 1 and
  // skipping the live ids (at most workload.batch) reuses an id only after
  // 2^31 - 1 later creations, as kvc.h promises.
  for (;;) {
    const kvc_seq id = next_id_;
    next_id_ = id == INT32_MAX ? 1 : id + 1;
    if (!sequences_.count(id)) return id;
  }
}

kvc_seq Store::create_sequence() {
  std::lock_guard lock(mutex_);
  if (free_slots_.empty())
    fail(KVC_ERROR_CAPACITY, "the plan holds at most " + std::to_string(module_.workload.batch) +
                                 " sequences (workload.batch) and all are alive");
  auto s = std::make_shared<Sequence>();
  s->slot = free_slots_.back();
  for (auto& layer : layers_) layer->open_slot(s->slot);
  free_slots_.pop_back();
  const kvc_seq id = take_id();
  sequences_.emplace(id, std::move(s));
  return id;
}

kvc_seq Store::fork_sequence(kvc_seq source) {
  std::shared_ptr<Sequence> src = find(source);
  const auto src_lock = lock_live(*src, source);
  std::lock_guard lock(mutex_);
  if (free_slots_.empty())
    fail(KVC_ERROR_CAPACITY, "cannot fork sequence " + std::to_string(source) + ": all " +
                                 std::to_string(module_.workload.batch) + " sequences of the plan's batch are alive");
  auto s = std::make_shared<Sequence>();
  s->slot = free_slots_.back();
  for (auto& layer : layers_) layer->copy_slot(src->slot, s->slot);
  free_slots_.pop_back();
  const kvc_seq id = take_id();
  sequences_.emplace(id, std::move(s));
  return id;
}

void Store::free_sequence(kvc_seq seq) {
  std::shared_ptr<Sequence> s;
  {
    std::lock_guard lock(mutex_);
    auto it = sequences_.find(seq);
    if (it == sequences_.end()) fail(KVC_ERROR_INVALID_ARGUMENT, "unknown sequence " + std::to_string(seq));
    s = it->second;
    sequences_.erase(it);
  }
  std::lock_guard seq_lock(s->mutex);  // waits for a call still running on it
  s->freed = true;
  for (auto& layer : layers_) layer->close_slot(s->slot);
  std::lock_guard lock(mutex_);
  free_slots_.push_back(s->slot);
}

void Store::append(int layer, kvc_seq seq, const float* k, const float* v, std::int64_t n_tokens) {
  LayerStore& l = layer_at(layer);
  std::shared_ptr<Sequence> s = find(seq);
  const auto lock = lock_live(*s, seq);
  l.check_append(s->slot, k, v, n_tokens);
  l.append(s->slot, k, v, n_tokens);
}

void Store::end_prefill(int layer, kvc_seq seq, const float* window, std::int64_t n_q) {
  LayerStore& l = layer_at(layer);
  std::shared_ptr<Sequence> s = find(seq);
  const auto lock = lock_live(*s, seq);
  l.check_end_prefill(s->slot, window, n_q);
  if (!l.stages()) return;
  if (!l.begin_end_prefill(s->slot, window, n_q)) {
    l.finish_prefill(s->slot);
    return;
  }
  // A cross-layer prefill basis: once every layer of the group has ended its
  // prefill, the basis comes from all their prompt keys and they all compress.
  const std::vector<int>& group = basis_group_[static_cast<std::size_t>(layer)];
  std::vector<LayerStore*> members;
  for (int m : group) {
    LayerStore& member = *layers_[static_cast<std::size_t>(m)];
    if (!member.waiting_for_group(s->slot)) return;
    members.push_back(&member);
  }
  members.front()->compute_group_basis(s->slot, members);
  for (LayerStore* member : members) member->finish_prefill(s->slot);
}

void Store::check_query(const float* q, const float* out) const {
  if (!q || !out) fail(KVC_ERROR_INVALID_ARGUMENT, "attend with a null query or output");
}

void Store::attend(int layer, kvc_seq seq, const float* q, float* out) { attend_batch(layer, &seq, 1, q, out); }

void Store::attend_batch(int layer, const kvc_seq* seqs, int n_seqs, const float* q, float* out) {
  LayerStore& l = layer_at(layer);
  if (n_seqs < 0 || (n_seqs > 0 && !seqs)) fail(KVC_ERROR_INVALID_ARGUMENT, "attend_batch: bad sequence list");
  if (n_seqs == 0) return;
  check_query(q, out);
  const std::int64_t row = static_cast<std::int64_t>(module_.model.q_heads) * module_.model.head_dim;
  for (std::int64_t i = 0; i < n_seqs * row; ++i)
    if (!std::isfinite(q[i])) fail(KVC_ERROR_INVALID_ARGUMENT, "attend: query element " + std::to_string(i) +
                                                                   " is not finite");
  // Lock the sequences in id order (no deadlock with another batch), each once.
  std::vector<kvc_seq> ids(seqs, seqs + n_seqs);
  std::sort(ids.begin(), ids.end());
  if (std::adjacent_find(ids.begin(), ids.end()) != ids.end())
    fail(KVC_ERROR_INVALID_ARGUMENT, "attend_batch: a sequence appears twice");
  std::map<kvc_seq, std::shared_ptr<Sequence>> found;
  for (kvc_seq id : ids) found.emplace(id, find(id));
  std::vector<std::unique_lock<std::mutex>> locks;
  for (auto& [id, s] : found) locks.push_back(lock_live(*s, id));
  std::vector<int> slots;
  for (int i = 0; i < n_seqs; ++i) {
    const int slot = found.at(seqs[i])->slot;
    l.check_attend(slot);
    slots.push_back(slot);
  }
  const int heads = l.kv_heads();
  const std::int64_t head_stride = static_cast<std::int64_t>(l.group_size()) * module_.model.head_dim;
  pool_.parallel_for(static_cast<std::int64_t>(n_seqs) * heads, [&](std::int64_t item) {
    const std::int64_t i = item / heads;
    const int h = static_cast<int>(item % heads);
    const std::int64_t offset = i * row + h * head_stride;
    l.attend_head(slots[static_cast<std::size_t>(i)], h, q + offset, out + offset);
  });
}

void Store::set_calibrated_basis(int layer, int kv_head, const float* basis) {
  LayerStore& l = layer_at(layer);
  const ir::LowRank& lr = l.plan().lowrank;
  if (lr.rank == 0 || lr.source != ir::BasisSource::Calibrated)
    fail(KVC_ERROR_INVALID_ARGUMENT, "layer " + std::to_string(layer) + " has no calibrated low-rank basis");
  if (kv_head < 0 || kv_head >= l.kv_heads())
    fail(KVC_ERROR_INVALID_ARGUMENT, "KV head " + std::to_string(kv_head) + " out of range");
  if (!basis) fail(KVC_ERROR_INVALID_ARGUMENT, "calibrated basis is null");
  std::lock_guard lock(mutex_);
  for (int m : basis_group_[static_cast<std::size_t>(layer)])
    if (layers_[static_cast<std::size_t>(m)]->blocks_used() > 0)
      fail(KVC_ERROR_STATE, "layer " + std::to_string(m) + " already holds keys compressed with the old basis");
  l.set_calibrated_basis(kv_head, basis);
}

void Store::install_own_kernel(int layer) {
  LayerStore& l = *layers_[static_cast<std::size_t>(layer)];
  if (jit_)
    l.set_kernel(make_function_kernel(jit_->layer(layer).attend));
  else
    l.reset_kernel();
}

void Store::set_layer_kernel(int layer, kvc_attend_fn kernel) {
  LayerStore& l = layer_at(layer);
  std::lock_guard lock(mutex_);
  if (kernel)
    l.set_kernel(make_function_kernel(kernel));
  else
    install_own_kernel(layer);
  host_kernel_[static_cast<std::size_t>(layer)] = kernel ? 1 : 0;
}

void Store::set_layer_append(int layer, kvc_append_fn encoder) {
  LayerStore& l = layer_at(layer);
  std::lock_guard lock(mutex_);
  // Blocks written by one encoder and then another must agree byte for byte; a
  // switch with blocks held could not be checked, so it is refused.
  if (l.blocks_used() > 0)
    fail(KVC_ERROR_STATE, "layer " + std::to_string(layer) + " already holds blocks; set its encoder before appending");
  l.set_append_encoder(encoder ? encoder : jit_ ? jit_->layer(layer).append : nullptr);
  host_append_[static_cast<std::size_t>(layer)] = encoder ? 1 : 0;
}

kvc_kernel_stats Store::kernel_stats() const {
  kvc_kernel_stats st{};
  st.backend = backend_;
  if (jit_) {
    st.attend_kernels = jit_->attend_kernels();
    st.append_kernels = jit_->append_kernels();
    st.compile_ms = jit_->compile_ms();
  }
  std::lock_guard lock(mutex_);
  for (char host : host_kernel_) st.host_layers += host ? 1 : 0;
  for (char host : host_append_) st.host_appends += host ? 1 : 0;
  return st;
}

const char* Store::attend_kernel_name(int layer) const {
  layer_at(layer);
  std::lock_guard lock(mutex_);
  if (host_kernel_[static_cast<std::size_t>(layer)]) return "host";
  return jit_ ? jit_->layer(layer).attend_name.c_str() : "reference";
}

const char* Store::append_kernel_name(int layer) const {
  layer_at(layer);
  std::lock_guard lock(mutex_);
  if (host_append_[static_cast<std::size_t>(layer)]) return "host";
  return jit_ ? jit_->layer(layer).append_name.c_str() : "reference";
}

kvc_memory_stats Store::memory_stats() const {
  kvc_memory_stats st{};
  std::vector<std::shared_ptr<Sequence>> live;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, s] : sequences_) live.push_back(s);
  }
  st.live_sequences = static_cast<std::int32_t>(live.size());
  for (const auto& layer : layers_) {
    st.bytes_allocated += layer->bytes_allocated();
    st.bytes_live += layer->bytes_per_slot() * static_cast<std::int64_t>(live.size()) + layer->shared_basis_bytes();
    st.bytes_used += layer->shared_basis_bytes();
    st.blocks_used += layer->blocks_used();
    st.blocks_total += layer->blocks_total();
  }
  for (const auto& s : live) {
    std::lock_guard lock(s->mutex);
    if (s->freed) continue;  // freed since the list was taken: its slot is no longer its own
    for (const auto& layer : layers_) {
      st.bytes_used += layer->bytes_used(s->slot);
      st.staging_bytes += layer->staging_bytes(s->slot);
    }
  }
  return st;
}

}  // namespace kvc::runtime
