// Native CPU kernels of the zoo recurrences: the time loop of a SimpleRNN,
// LSTM or GRU (both reset placements) and its backpropagation through time.
//
// What runs here is only the sequential part. The caller (zoo/layers/native.py)
// computes the input projection `x W + b` for all steps in one TensorFlow
// matrix product before the forward kernel, and the weight gradients as
// products over all `T * B` rows after the backward kernel; TensorFlow
// differentiates the projection itself.
//
// Per step the work is one (or, for the GRU with the reset gate before the
// product, two) small matrix products with the recurrent kernel and the gate
// arithmetic. A generic TensorFlow loop pays a few microseconds of executor
// overhead per op and step; here a step is a few plain function calls. The
// batch rows of a sequence are independent, so the batch is cut into one
// block of rows per core and every block runs the whole sequence on its own
// thread, with no synchronisation between steps.
//
// Conventions (time-major, float32, row-major):
//   projected      (T, B, G*H)  x_t W + b for each step (G gate blocks)
//   recurrent_kernel (H, G*H)   Keras layout: gate blocks side by side
//   h_seq          (T, B, H)    state after each step
//   saved          (T, B, S*H)  what the backward pass needs (see kSaved)
//   mask           (T, B) with 1 where the step runs, or shape (0) for none;
//                  a masked row keeps its states.
// Gate blocks: LSTM i, f, c (candidate g), o; GRU z, r, h (candidate).
// Our GRU: h_t = h_{t-1} + z * (h~ - h_{t-1}) = (1 - z) h_{t-1} + z h~.

#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <cstdlib>

#include <Eigen/Core>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/threadpool.h"

namespace zoo {
namespace {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Status;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::errors::InvalidArgument;
using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Stride = Eigen::OuterStride<>;
using MatrixView = Eigen::Map<RowMajor, Eigen::Unaligned, Stride>;
using ConstMatrixView = Eigen::Map<const RowMajor, Eigen::Unaligned, Stride>;
using Vector = Eigen::Map<Eigen::ArrayXf>;
using ConstVector = Eigen::Map<const Eigen::ArrayXf>;

enum class Cell { kTanh, kSigmoid, kRelu, kLinear, kLSTM, kGRU, kGRUResetAfter };

constexpr char kCellAttr[] =
    "cell: {'rnn_tanh', 'rnn_sigmoid', 'rnn_relu', 'rnn_linear', 'lstm', 'gru', "
    "'gru_reset_after'}";

Cell ParseCell(const std::string& name) {
  if (name == "rnn_tanh") return Cell::kTanh;
  if (name == "rnn_sigmoid") return Cell::kSigmoid;
  if (name == "rnn_relu") return Cell::kRelu;
  if (name == "rnn_linear") return Cell::kLinear;
  if (name == "lstm") return Cell::kLSTM;
  if (name == "gru") return Cell::kGRU;
  return Cell::kGRUResetAfter;
}

bool IsSimple(Cell cell) { return cell <= Cell::kLinear; }

// Gate blocks in the weights.
int Gates(Cell cell) {
  if (cell == Cell::kLSTM) return 4;
  if (cell == Cell::kGRU || cell == Cell::kGRUResetAfter) return 3;
  return 1;
}

// Widths (in units of H) kept per step for the backward pass:
// LSTM i, f, g, o and c_t; GRU z, r, h~ (and h U_h + b_hh after the reset).
int Saved(Cell cell) {
  switch (cell) {
    case Cell::kLSTM: return 5;
    case Cell::kGRU: return 3;
    case Cell::kGRUResetAfter: return 4;
    default: return 0;
  }
}

template <typename Expr>
auto Sigmoid(const Expr& a) { return a.logistic(); }

// ---------------------------------------------------------------------------
// The step's matrix product C = A B, where B (a view of the recurrent
// kernel, K x N) is the same for every step of a call and A (m x K) is a
// block of state rows. A general GEMM repacks B on every call, which for a
// few batch rows costs about as much as the arithmetic; here B is packed
// once per call into panels of 32 columns (each panel K x 32, contiguous)
// and an AVX-512 micro-kernel computes 8 x 32 tiles of C. Without AVX-512
// the product falls back to Eigen.
// ---------------------------------------------------------------------------

class StepProduct {
 public:
  // B(kk, j) = src[kk * stride + j], or src[j * stride + kk] if `transpose`.
  StepProduct(const float* src, int64_t k, int64_t n, int64_t stride, bool transpose)
      : src_(src), k_(k), n_(n), stride_(stride), transpose_(transpose) {
#if defined(__AVX512F__)
    panels_ = (n + kPanel - 1) / kPanel;
    packed_ = static_cast<float*>(
        std::aligned_alloc(64, std::max<int64_t>(64, panels_ * k * kPanel * sizeof(float))));
    for (int64_t p = 0; p < panels_; ++p) {
      float* panel = packed_ + p * k * kPanel;
      for (int64_t kk = 0; kk < k; ++kk) {
        for (int64_t j = 0; j < kPanel; ++j) {
          const int64_t col = p * kPanel + j;
          panel[kk * kPanel + j] =
              col >= n ? 0.0f : (transpose ? src[col * stride + kk] : src[kk * stride + col]);
        }
      }
    }
#endif
  }
  ~StepProduct() {
#if defined(__AVX512F__)
    std::free(packed_);
#endif
  }
  StepProduct(const StepProduct&) = delete;
  StepProduct& operator=(const StepProduct&) = delete;

  // C (m x N, row stride ldc) = A (m x K, row stride lda) B.
  void Multiply(const float* a, int64_t lda, int64_t m, float* c, int64_t ldc) const {
#if defined(__AVX512F__)
    for (int64_t p = 0; p < panels_; ++p) {
      const float* panel = packed_ + p * k_ * kPanel;
      const int64_t cols = std::min<int64_t>(kPanel, n_ - p * kPanel);
      const __mmask16 low = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
      const __mmask16 high =
          cols >= 32 ? 0xFFFF : (cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1));
      float* c_panel = c + p * kPanel;
      int64_t r = 0;
      for (; r + 8 <= m; r += 8) Tile<8>(a + r * lda, lda, panel, c_panel + r * ldc, ldc, low, high);
      switch (m - r) {
        case 7: Tile<7>(a + r * lda, lda, panel, c_panel + r * ldc, ldc, low, high); break;
        case 6: Tile<6>(a + r * lda, lda, panel, c_panel + r * ldc, ldc, low, high); break;
        case 5: Tile<5>(a + r * lda, lda, panel, c_panel + r * ldc, ldc, low, high); break;
        case 4: Tile<4>(a + r * lda, lda, panel, c_panel + r * ldc, ldc, low, high); break;
        case 3: Tile<3>(a + r * lda, lda, panel, c_panel + r * ldc, ldc, low, high); break;
        case 2: Tile<2>(a + r * lda, lda, panel, c_panel + r * ldc, ldc, low, high); break;
        case 1: Tile<1>(a + r * lda, lda, panel, c_panel + r * ldc, ldc, low, high); break;
        default: break;
      }
    }
#else
    ConstMatrixView a_view(a, m, k_, Stride(lda));
    MatrixView c_view(c, m, n_, Stride(ldc));
    if (transpose_) {
      c_view.noalias() = a_view * ConstMatrixView(src_, n_, k_, Stride(stride_)).transpose();
    } else {
      c_view.noalias() = a_view * ConstMatrixView(src_, k_, n_, Stride(stride_));
    }
#endif
  }

 private:
#if defined(__AVX512F__)
  static constexpr int64_t kPanel = 32;

  template <int R>
  void Tile(const float* a, int64_t lda, const float* panel, float* c, int64_t ldc,
            __mmask16 low, __mmask16 high) const {
    __m512 acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t kk = 0; kk < k_; ++kk) {
      const __m512 b0 = _mm512_load_ps(panel + kk * kPanel);
      const __m512 b1 = _mm512_load_ps(panel + kk * kPanel + 16);
      for (int r = 0; r < R; ++r) {
        const __m512 x = _mm512_set1_ps(a[r * lda + kk]);
        acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
      }
    }
    for (int r = 0; r < R; ++r) {
      _mm512_mask_storeu_ps(c + r * ldc, low, acc[r][0]);
      _mm512_mask_storeu_ps(c + r * ldc + 16, high, acc[r][1]);
    }
  }

  int64_t panels_ = 0;
  float* packed_ = nullptr;
#endif
  const float* src_;
  int64_t k_, n_, stride_;
  bool transpose_;
};

// Runs `work(first_row, rows)` on blocks of batch rows, one per thread.
// The calling thread takes blocks too and, once no block is left to start,
// waits only for blocks another thread has started: if the pool's threads
// are all busy (say, with kernels waiting the same way), the caller runs
// every block itself, so the wait cannot deadlock.
void ForEachRowBlock(OpKernelContext* context, int64_t batch,
                     const std::function<void(int64_t, int64_t)>& work) {
  auto* pool = context->device()->tensorflow_cpu_worker_threads()->workers;
  constexpr int64_t kMinRows = 4;
  int64_t blocks = std::min<int64_t>(pool->NumThreads(), batch / kMinRows);
  blocks = std::max<int64_t>(blocks, 1);
  if (blocks == 1) {
    work(0, batch);
    return;
  }
  struct Progress {
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> finished{0};
  };
  auto progress = std::make_shared<Progress>();
  const int64_t per_block = (batch + blocks - 1) / blocks;
  // `work` lives on the caller's stack: it is only touched for a claimed
  // block, and the caller returns only after every block has finished, so a
  // helper that starts late finds nothing to claim and never touches it.
  const auto* job = &work;
  auto drain = [progress, job, blocks, per_block, batch] {
    for (int64_t block; (block = progress->next.fetch_add(1)) < blocks;) {
      const int64_t first = block * per_block;
      const int64_t rows = std::min(batch, first + per_block) - first;
      if (rows > 0) (*job)(first, rows);
      progress->finished.fetch_add(1);
    }
  };
  for (int64_t helper = 1; helper < blocks; ++helper) pool->Schedule(drain);
  drain();
  while (progress->finished.load() < blocks) std::this_thread::yield();
}

Status CheckRank(const Tensor& tensor, int rank, const char* name) {
  if (tensor.dims() != rank) {
    return InvalidArgument(name, " must have rank ", rank, ", received shape ",
                           tensor.shape().DebugString());
  }
  return Status();
}

// ---------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------

class RecurrenceForwardOp : public OpKernel {
 public:
  explicit RecurrenceForwardOp(OpKernelConstruction* context) : OpKernel(context) {
    std::string cell;
    OP_REQUIRES_OK(context, context->GetAttr("cell", &cell));
    OP_REQUIRES_OK(context, context->GetAttr("save", &save_));
    cell_ = ParseCell(cell);
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& projected = context->input(0);
    const Tensor& kernel = context->input(1);
    const Tensor& recurrent_bias = context->input(2);
    const Tensor& h0 = context->input(3);
    const Tensor& c0 = context->input(4);
    const Tensor& mask = context->input(5);
    OP_REQUIRES_OK(context, CheckRank(projected, 3, "projected"));
    OP_REQUIRES_OK(context, CheckRank(kernel, 2, "recurrent_kernel"));
    OP_REQUIRES_OK(context, CheckRank(h0, 2, "h0"));
    const int64_t steps = projected.dim_size(0);
    const int64_t batch = projected.dim_size(1);
    const int64_t units = kernel.dim_size(0);
    const int64_t width = Gates(cell_) * units;
    OP_REQUIRES(context, kernel.dim_size(1) == width && projected.dim_size(2) == width,
                InvalidArgument("recurrent_kernel must be (H, ", Gates(cell_),
                                "H) and projected (T, B, ", Gates(cell_), "H); received ",
                                kernel.shape().DebugString(), " and ",
                                projected.shape().DebugString()));
    OP_REQUIRES(context, h0.dim_size(0) == batch && h0.dim_size(1) == units,
                InvalidArgument("h0 must be (B, H); received ", h0.shape().DebugString()));
    const bool lstm = cell_ == Cell::kLSTM;
    OP_REQUIRES(context, !lstm || c0.shape() == h0.shape(),
                InvalidArgument("c0 must be (B, H); received ", c0.shape().DebugString()));
    OP_REQUIRES(context,
                cell_ != Cell::kGRUResetAfter || recurrent_bias.NumElements() == units,
                InvalidArgument("recurrent_bias must have H elements"));
    const bool masked = mask.NumElements() > 0;
    OP_REQUIRES(context, !masked || (mask.dims() == 2 && mask.dim_size(0) == steps &&
                                     mask.dim_size(1) == batch),
                InvalidArgument("mask must be (T, B) or empty; received ",
                                mask.shape().DebugString()));

    Tensor* h_seq = nullptr;
    Tensor* c_last = nullptr;
    Tensor* saved = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, TensorShape({steps, batch, units}),
                                                     &h_seq));
    OP_REQUIRES_OK(context, context->allocate_output(
                                1, lstm ? TensorShape({batch, units}) : TensorShape({0}),
                                &c_last));
    const int64_t saved_width = Saved(cell_) * units;
    OP_REQUIRES_OK(context,
                   context->allocate_output(
                       2, TensorShape({save_ ? steps : 0, batch, saved_width}), &saved));

    Args args;
    args.steps = steps;
    args.batch = batch;
    args.units = units;
    args.projected = projected.flat<float>().data();
    args.kernel = kernel.flat<float>().data();
    args.recurrent_bias =
        cell_ == Cell::kGRUResetAfter ? recurrent_bias.flat<float>().data() : nullptr;
    args.h0 = h0.flat<float>().data();
    args.c0 = lstm ? c0.flat<float>().data() : nullptr;
    args.mask = masked ? mask.flat<float>().data() : nullptr;
    args.h_seq = h_seq->flat<float>().data();
    args.c_last = lstm ? c_last->flat<float>().data() : nullptr;
    args.saved = save_ ? saved->flat<float>().data() : nullptr;
    if (steps == 0) {
      if (lstm) std::copy_n(args.c0, batch * units, args.c_last);
      return;
    }
    // The first 2H columns of the GRU kernel (z and r) act on h, the last H on r*h.
    const int64_t width_on_h = cell_ == Cell::kGRU ? 2 * units : width;
    const StepProduct on_h(args.kernel, units, width_on_h, width, false);
    const StepProduct on_reset_h(args.kernel + 2 * units, units,
                                 cell_ == Cell::kGRU ? units : 0, width, false);
    ForEachRowBlock(context, batch, [&](int64_t first, int64_t rows) {
      Run(args, on_h, on_reset_h, first, rows);
    });
  }

 private:
  struct Args {
    int64_t steps, batch, units;
    const float *projected, *kernel, *recurrent_bias, *h0, *c0, *mask;
    float *h_seq, *c_last, *saved;
  };

  void Run(const Args& a, const StepProduct& on_h, const StepProduct& on_reset_h,
           int64_t first, int64_t rows) const {
    const int64_t H = a.units, B = a.batch;
    const int64_t G = Gates(cell_), S = Saved(cell_) * H;
    std::vector<float> gates(rows * G * H), reset_h(cell_ == Cell::kGRU ? rows * H : 0);
    std::vector<float> cell(cell_ == Cell::kLSTM ? rows * H : 0);
    if (cell_ == Cell::kLSTM) std::copy_n(a.c0 + first * H, rows * H, cell.data());

    for (int64_t t = 0; t < a.steps; ++t) {
      const float* h_prev = t == 0 ? a.h0 + first * H : a.h_seq + ((t - 1) * B + first) * H;
      float* h_out = a.h_seq + (t * B + first) * H;
      const float* pre = a.projected + (t * B + first) * G * H;
      float* keep = a.saved ? a.saved + (t * B + first) * S : nullptr;
      on_h.Multiply(h_prev, H, rows, gates.data(), G * H);

      if (cell_ == Cell::kGRU) {
        // z and r first; then the candidate from (r * h) U_h.
        for (int64_t r = 0; r < rows; ++r) {
          Vector zr(gates.data() + r * G * H, 2 * H);
          zr = Sigmoid(zr + ConstVector(pre + r * G * H, 2 * H));
          Vector(reset_h.data() + r * H, H) =
              zr.segment(H, H) * ConstVector(h_prev + r * H, H);
        }
        on_reset_h.Multiply(reset_h.data(), H, rows, gates.data() + 2 * H, G * H);
      }

      for (int64_t r = 0; r < rows; ++r) {
        const bool runs = !a.mask || a.mask[t * B + first + r] != 0.0f;
        float* g = gates.data() + r * G * H;
        const float* p = pre + r * G * H;
        ConstVector h_last(h_prev + r * H, H);
        Vector h_new(h_out + r * H, H);
        float* k = keep ? keep + r * S : nullptr;
        switch (cell_) {
          case Cell::kLSTM: {
            Vector all(g, 4 * H);
            all += ConstVector(p, 4 * H);
            all.segment(0, 2 * H) = Sigmoid(all.segment(0, 2 * H));
            all.segment(2 * H, H) = all.segment(2 * H, H).tanh();
            all.segment(3 * H, H) = Sigmoid(all.segment(3 * H, H));
            Vector c(cell.data() + r * H, H);
            if (runs) {
              c = all.segment(H, H) * c + all.segment(0, H) * all.segment(2 * H, H);
              h_new = all.segment(3 * H, H) * c.tanh();
            } else {
              h_new = h_last;
            }
            if (k) {
              std::copy_n(g, 4 * H, k);
              std::copy_n(c.data(), H, k + 4 * H);
            }
            break;
          }
          case Cell::kGRU: {
            Vector candidate(g + 2 * H, H);
            candidate = (candidate + ConstVector(p + 2 * H, H)).tanh();
            if (runs) {
              h_new = h_last + Vector(g, H) * (candidate - h_last);
            } else {
              h_new = h_last;
            }
            if (k) std::copy_n(g, 3 * H, k);
            break;
          }
          case Cell::kGRUResetAfter: {
            Vector zr(g, 2 * H);
            zr = Sigmoid(zr + ConstVector(p, 2 * H));
            Vector recurrent(g + 2 * H, H);
            recurrent += ConstVector(a.recurrent_bias, H);
            if (k) {
              std::copy_n(g, 2 * H, k);
              std::copy_n(recurrent.data(), H, k + 3 * H);
            }
            // The candidate overwrites h U_h + b_hh in the scratch row.
            recurrent = (ConstVector(p + 2 * H, H) + zr.segment(H, H) * recurrent).tanh();
            if (k) std::copy_n(recurrent.data(), H, k + 2 * H);
            if (runs) {
              h_new = h_last + zr.segment(0, H) * (recurrent - h_last);
            } else {
              h_new = h_last;
            }
            break;
          }
          default: {
            if (!runs) {
              h_new = h_last;
              break;
            }
            Vector a_(g, H);
            a_ += ConstVector(p, H);
            if (cell_ == Cell::kTanh) {
              h_new = a_.tanh();
            } else if (cell_ == Cell::kSigmoid) {
              h_new = Sigmoid(a_);
            } else if (cell_ == Cell::kRelu) {
              h_new = a_.max(0.0f);
            } else {
              h_new = a_;
            }
          }
        }
      }
    }
    if (cell_ == Cell::kLSTM) std::copy_n(cell.data(), rows * H, a.c_last + first * H);
  }

  Cell cell_;
  bool save_;
};

// ---------------------------------------------------------------------------
// Backward
// ---------------------------------------------------------------------------

class RecurrenceBackwardOp : public OpKernel {
 public:
  explicit RecurrenceBackwardOp(OpKernelConstruction* context) : OpKernel(context) {
    std::string cell;
    OP_REQUIRES_OK(context, context->GetAttr("cell", &cell));
    cell_ = ParseCell(cell);
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& kernel = context->input(0);
    const Tensor& h0 = context->input(1);
    const Tensor& c0 = context->input(2);
    const Tensor& h_seq = context->input(3);
    const Tensor& saved = context->input(4);
    const Tensor& mask = context->input(5);
    const Tensor& d_h_seq = context->input(6);
    const Tensor& d_c_last = context->input(7);
    OP_REQUIRES_OK(context, CheckRank(h_seq, 3, "h_seq"));
    OP_REQUIRES_OK(context, CheckRank(kernel, 2, "recurrent_kernel"));
    const int64_t steps = h_seq.dim_size(0);
    const int64_t batch = h_seq.dim_size(1);
    const int64_t units = h_seq.dim_size(2);
    const int64_t width = Gates(cell_) * units;
    const bool lstm = cell_ == Cell::kLSTM;
    OP_REQUIRES(context, kernel.dim_size(0) == units && kernel.dim_size(1) == width,
                InvalidArgument("recurrent_kernel does not match h_seq"));
    OP_REQUIRES(context, h0.dim_size(0) == batch && h0.dim_size(1) == units,
                InvalidArgument("h0 does not match h_seq"));
    OP_REQUIRES(context,
                Saved(cell_) == 0 ||
                    (saved.dims() == 3 && saved.dim_size(0) == steps &&
                     saved.dim_size(2) == Saved(cell_) * units),
                InvalidArgument("the forward kernel did not keep what the backward pass "
                                "needs (it ran with save=False); received saved of shape ",
                                saved.shape().DebugString()));
    OP_REQUIRES(context, d_h_seq.shape() == h_seq.shape(),
                InvalidArgument("d_h_seq must match h_seq"));
    OP_REQUIRES(context, !lstm || d_c_last.shape() == h0.shape(),
                InvalidArgument("d_c_last must be (B, H)"));
    const bool masked = mask.NumElements() > 0;

    Tensor *d_projected = nullptr, *d_recurrent = nullptr, *d_h0 = nullptr, *d_c0 = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, TensorShape({steps, batch, width}),
                                                     &d_projected));
    OP_REQUIRES_OK(context,
                   context->allocate_output(1,
                                            cell_ == Cell::kGRUResetAfter
                                                ? TensorShape({steps, batch, width})
                                                : TensorShape({0}),
                                            &d_recurrent));
    OP_REQUIRES_OK(context, context->allocate_output(2, h0.shape(), &d_h0));
    OP_REQUIRES_OK(context, context->allocate_output(
                                3, lstm ? h0.shape() : TensorShape({0}), &d_c0));

    Args args;
    args.steps = steps;
    args.batch = batch;
    args.units = units;
    args.kernel = kernel.flat<float>().data();
    args.h0 = h0.flat<float>().data();
    args.c0 = lstm ? c0.flat<float>().data() : nullptr;
    args.h_seq = h_seq.flat<float>().data();
    args.saved = Saved(cell_) ? saved.flat<float>().data() : nullptr;
    args.mask = masked ? mask.flat<float>().data() : nullptr;
    args.d_h_seq = d_h_seq.flat<float>().data();
    args.d_c_last = lstm ? d_c_last.flat<float>().data() : nullptr;
    args.d_projected = d_projected->flat<float>().data();
    args.d_recurrent =
        cell_ == Cell::kGRUResetAfter ? d_recurrent->flat<float>().data() : nullptr;
    args.d_h0 = d_h0->flat<float>().data();
    args.d_c0 = lstm ? d_c0->flat<float>().data() : nullptr;
    if (steps == 0) {
      std::fill_n(args.d_h0, batch * units, 0.0f);
      if (lstm) std::copy_n(args.d_c_last, batch * units, args.d_c0);
      return;
    }
    // The part of the kernel multiplied by the step's d_pre rows: all of it,
    // or the z and r blocks for the GRU (its candidate block acts on r*h).
    const int64_t product_width = cell_ == Cell::kGRU ? 2 * units : width;
    const StepProduct to_h(args.kernel, product_width, units, width, true);
    const StepProduct to_reset_h(args.kernel + 2 * units, cell_ == Cell::kGRU ? units : 0,
                                 units, width, true);
    ForEachRowBlock(context, batch, [&](int64_t first, int64_t rows) {
      Run(args, to_h, to_reset_h, product_width, first, rows);
    });
  }

 private:
  struct Args {
    int64_t steps, batch, units;
    const float *kernel, *h0, *c0, *h_seq, *saved, *mask, *d_h_seq, *d_c_last;
    float *d_projected, *d_recurrent, *d_h0, *d_c0;
  };

  void Run(const Args& a, const StepProduct& to_h, const StepProduct& to_reset_h,
           int64_t product_width, int64_t first, int64_t rows) const {
    const int64_t H = a.units, B = a.batch;
    const int64_t G = Gates(cell_), S = Saved(cell_) * H, GH = G * H;
    // Carried gradients: of h (and of c for the LSTM), and the product
    // d_pre U^T of the step.
    std::vector<float> dh(rows * H, 0.0f), dc(cell_ == Cell::kLSTM ? rows * H : 0, 0.0f);
    std::vector<float> back(rows * H), d_reset_h(cell_ == Cell::kGRU ? rows * H : 0);
    std::vector<float> scratch(H);
    if (cell_ == Cell::kLSTM) std::copy_n(a.d_c_last + first * H, rows * H, dc.data());

    for (int64_t t = a.steps - 1; t >= 0; --t) {
      const int64_t row0 = t * B + first;
      const float* h_prev = t == 0 ? a.h0 + first * H : a.h_seq + (row0 - B) * H;
      const float* h_now = a.h_seq + row0 * H;
      const float* keep = a.saved ? a.saved + row0 * S : nullptr;
      float* d_pre = a.d_projected + row0 * GH;
      float* d_rec = a.d_recurrent ? a.d_recurrent + row0 * GH : nullptr;
      {
        Vector all(dh.data(), rows * H);
        all += ConstVector(a.d_h_seq + row0 * H, rows * H);
      }
      for (int64_t r = 0; r < rows; ++r) {
        const float m = a.mask ? a.mask[row0 + r] : 1.0f;
        Vector d_h(dh.data() + r * H, H);
        ConstVector h_last(h_prev + r * H, H);
        float* d = d_pre + r * GH;
        const float* k = keep ? keep + r * S : nullptr;
        switch (cell_) {
          case Cell::kLSTM: {
            ConstVector i(k, H), f(k + H, H), g(k + 2 * H, H), o(k + 3 * H, H);
            ConstVector c(k + 4 * H, H);
            const float* c_prev_ptr =
                t == 0 ? a.c0 + (first + r) * H : a.saved + (row0 - B + r) * S + 4 * H;
            ConstVector c_prev(c_prev_ptr, H);
            Vector d_c(dc.data() + r * H, H);
            if (m == 0.0f) {
              std::fill_n(d, GH, 0.0f);
              break;  // h and c pass through; d_h and d_c stay as they are
            }
            Vector tanh_c(scratch.data(), H);
            tanh_c = c.tanh();
            d_c += d_h * o * (1.0f - tanh_c.square());
            Vector(d, H) = d_c * g * i * (1.0f - i);
            Vector(d + H, H) = d_c * c_prev * f * (1.0f - f);
            Vector(d + 2 * H, H) = d_c * i * (1.0f - g.square());
            Vector(d + 3 * H, H) = d_h * tanh_c * o * (1.0f - o);
            d_c *= f;
            break;
          }
          case Cell::kGRU: {
            ConstVector z(k, H), rg(k + H, H), candidate(k + 2 * H, H);
            Vector d_candidate(d + 2 * H, H);
            d_candidate = d_h * z * (1.0f - candidate.square()) * m;
            Vector(d, H) = d_h * (candidate - h_last) * z * (1.0f - z) * m;
            break;
          }
          case Cell::kGRUResetAfter: {
            ConstVector z(k, H), rg(k + H, H), candidate(k + 2 * H, H), recurrent(k + 3 * H, H);
            Vector d_candidate(d + 2 * H, H);
            d_candidate = d_h * z * (1.0f - candidate.square()) * m;
            Vector(d, H) = d_h * (candidate - h_last) * z * (1.0f - z) * m;
            Vector(d + H, H) = d_candidate * recurrent * rg * (1.0f - rg);
            float* dr = d_rec + r * GH;
            std::copy_n(d, 2 * H, dr);
            Vector(dr + 2 * H, H) = d_candidate * rg;
            break;
          }
          default: {
            ConstVector h(h_now + r * H, H);
            Vector dp(d, H);
            if (cell_ == Cell::kTanh) {
              dp = d_h * (1.0f - h.square()) * m;
            } else if (cell_ == Cell::kSigmoid) {
              dp = d_h * h * (1.0f - h) * m;
            } else if (cell_ == Cell::kRelu) {
              dp = (h > 0.0f).select(d_h * m, 0.0f);
            } else {
              dp = d_h * m;
            }
          }
        }
      }

      if (cell_ == Cell::kGRU) {
        // d(r*h) = d_candidate U_h^T, then the reset gate's derivative.
        to_reset_h.Multiply(d_pre + 2 * H, GH, rows, d_reset_h.data(), H);
        for (int64_t r = 0; r < rows; ++r) {
          const float* k = keep + r * S;
          ConstVector rg(k + H, H), h_last(h_prev + r * H, H);
          ConstVector d_rh(d_reset_h.data() + r * H, H);
          Vector(d_pre + r * GH + H, H) = d_rh * h_last * rg * (1.0f - rg);
        }
      }

      // d h_{t-1} = d_pre U^T (+ what bypasses the product).
      const float* product_rows = d_rec ? d_rec : d_pre;
      to_h.Multiply(product_rows, GH, rows, back.data(), H);
      for (int64_t r = 0; r < rows; ++r) {
        const float m = a.mask ? a.mask[row0 + r] : 1.0f;
        Vector d_h(dh.data() + r * H, H);
        ConstVector through(back.data() + r * H, H);
        if (cell_ == Cell::kGRU || cell_ == Cell::kGRUResetAfter) {
          ConstVector z(keep + r * S, H);
          if (cell_ == Cell::kGRU) {
            d_h = through + d_h * (1.0f - z * m) +
                  ConstVector(d_reset_h.data() + r * H, H) * ConstVector(keep + r * S + H, H);
          } else {
            d_h = through + d_h * (1.0f - z * m);
          }
        } else {
          d_h = through + d_h * (1.0f - m);
        }
      }
    }
    std::copy_n(dh.data(), rows * H, a.d_h0 + first * H);
    if (cell_ == Cell::kLSTM) std::copy_n(dc.data(), rows * H, a.d_c0 + first * H);
  }

  Cell cell_;
};

// ---------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------

int SavedFromName(const std::string& cell) { return Saved(ParseCell(cell)); }

Status ForwardShape(InferenceContext* c) {
  ShapeHandle projected, kernel, h0;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &projected));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &kernel));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 2, &h0));
  std::string cell;
  bool save;
  TF_RETURN_IF_ERROR(c->GetAttr("cell", &cell));
  TF_RETURN_IF_ERROR(c->GetAttr("save", &save));
  DimensionHandle steps = c->Dim(projected, 0), batch = c->Dim(projected, 1);
  DimensionHandle units = c->Dim(kernel, 0);
  c->set_output(0, c->MakeShape({steps, batch, units}));
  c->set_output(1, cell == "lstm" ? c->MakeShape({batch, units}) : c->MakeShape({0}));
  DimensionHandle saved_width;
  TF_RETURN_IF_ERROR(c->Multiply(units, SavedFromName(cell), &saved_width));
  c->set_output(2, c->MakeShape({save ? steps : c->MakeDim(0), batch, saved_width}));
  return Status();
}

Status BackwardShape(InferenceContext* c) {
  ShapeHandle kernel, h_seq;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &kernel));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 3, &h_seq));
  std::string cell;
  TF_RETURN_IF_ERROR(c->GetAttr("cell", &cell));
  ShapeHandle d_projected =
      c->MakeShape({c->Dim(h_seq, 0), c->Dim(h_seq, 1), c->Dim(kernel, 1)});
  c->set_output(0, d_projected);
  c->set_output(1, cell == "gru_reset_after" ? d_projected : c->MakeShape({0}));
  c->set_output(2, c->input(1));
  c->set_output(3, cell == "lstm" ? c->input(1) : c->MakeShape({0}));
  return Status();
}

REGISTER_OP("ZooRecurrenceForward")
    .Input("projected: float")
    .Input("recurrent_kernel: float")
    .Input("recurrent_bias: float")
    .Input("h0: float")
    .Input("c0: float")
    .Input("mask: float")
    .Output("h_seq: float")
    .Output("c_last: float")
    .Output("saved: float")
    .Attr(kCellAttr)
    .Attr("save: bool = true")
    .SetShapeFn(ForwardShape)
    .Doc("The time loop of a zoo recurrence (see zoo/layers/native.py).");

REGISTER_OP("ZooRecurrenceBackward")
    .Input("recurrent_kernel: float")
    .Input("h0: float")
    .Input("c0: float")
    .Input("h_seq: float")
    .Input("saved: float")
    .Input("mask: float")
    .Input("d_h_seq: float")
    .Input("d_c_last: float")
    .Output("d_projected: float")
    .Output("d_recurrent: float")
    .Output("d_h0: float")
    .Output("d_c0: float")
    .Attr(kCellAttr)
    .SetShapeFn(BackwardShape)
    .Doc("Backpropagation through time of ZooRecurrenceForward.");

REGISTER_KERNEL_BUILDER(Name("ZooRecurrenceForward").Device(tensorflow::DEVICE_CPU),
                        RecurrenceForwardOp);
REGISTER_KERNEL_BUILDER(Name("ZooRecurrenceBackward").Device(tensorflow::DEVICE_CPU),
                        RecurrenceBackwardOp);

}  // namespace
}  // namespace zoo
