// Native CPU kernels of the zoo recurrences: a SimpleRNN, LSTM or GRU (both
// reset placements) over a whole sequence, and its backpropagation through
// time with all gradients.
//
// Per step the work is a product of the step's inputs with the input kernel,
// one (for the GRU with the reset gate before the product, two) product of
// the state with the recurrent kernel, and the gate arithmetic. A generic
// TensorFlow loop pays a few microseconds of executor overhead per op and
// step; here a step is a few plain function calls. The batch rows of a
// sequence are independent, so the batch is cut into blocks of rows and
// every block runs the whole sequence without synchronisation between steps.
// There are several blocks per core (`PlanRowBlocks`: about eight per thread,
// a multiple of the product's 8-row tile, larger when the weights outgrow a
// core's cache), taken from a shared queue (`ForEachRowBlock`): a core that
// is slower or busy with another program takes fewer blocks, instead of
// holding the whole step as one block per core would; the last blocks, one
// per thread, are halved where the halves keep whole tiles, to shorten the
// wait for the slowest thread at the end. The helper threads
// keep off the CPU of the thread that called the kernel (`StayOffCpu`), so
// that the two never share one core while another runs something else. The
// weights are packed once per call for the step products (`StepProduct`).
//
// Nothing of size (T, B, gates * H) is materialised besides what the
// backward pass needs (`saved`): the input projection is computed step by
// step, and the backward pass accumulates the weight gradients per block of
// rows over chunks of steps (products over about 512 rows), summing the
// blocks' parts in block order at the end.
//
// Reproducibility: Eigen evaluates an elementwise expression with vector
// instructions from the first aligned element of its destination and plain
// scalar code before it, and the two give different last bits for tanh and
// the logistic function. Every scratch buffer is therefore allocated aligned
// (`Floats`), so the split, and the result, depend only on the shapes, never
// on where the allocator put a buffer. Which thread runs a block changes
// from call to call, but never the result: the blocks depend only on the
// shapes and the number of threads, and their weight-gradient parts are
// summed in block order. When TensorFlow's op determinism is enabled
// (`tf.config.experimental.enable_op_determinism()`) the batch is cut into
// blocks of a fixed number of rows, independent of the number of threads:
// results are then bit-identical across thread counts too.
//
// Conventions (time-major, float32, row-major):
//   x                (T, B, I)
//   kernel           (I, G*H)   Keras layout: G gate blocks side by side
//   bias             (G*H)
//   recurrent_kernel (H, G*H)
//   h_seq            (T, B, H)  state after each step
//   saved            (T, B, S*H)  what the backward pass needs (see Saved)
//   mask             (T, B) with 1 where the step runs, or shape (0) for none;
//                    a masked row keeps its states.
// Gate blocks: LSTM i, f, c (candidate g), o; GRU z, r, h (candidate).
// Our GRU: h_t = h_{t-1} + z * (h~ - h_{t-1}) = (1 - z) h_{t-1} + z h~.
// For `gru_reset_after` the caller folds the recurrent biases of z and r into
// `bias`; `recurrent_bias` (H) is the candidate's, inside the reset gate.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include <cstdlib>

#include <sched.h>
#include <unistd.h>

#include <Eigen/Core>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/threadpool.h"
#include "tensorflow/core/util/determinism.h"

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

// Scratch memory aligned like Eigen's packets (see "Reproducibility" above).
using Floats = std::vector<float, Eigen::aligned_allocator<float>>;
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
// once per call into panels of 48 columns (each panel K x 48, contiguous)
// and an AVX-512 micro-kernel computes 8 x 48 tiles of C. Without AVX-512
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
      // The last panel is only as wide as the vectors its columns need
      // (16, 32 or 48 floats per row of K), so no product is computed for
      // columns beyond N.
      const int64_t width = PanelWidth(p);
      float* panel = packed_ + p * k * kPanel;
      for (int64_t kk = 0; kk < k; ++kk) {
        for (int64_t j = 0; j < width; ++j) {
          const int64_t col = p * kPanel + j;
          panel[kk * width + j] =
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
      // Store masks of the panel's 16-column vectors (the last one may be
      // narrower).
      __mmask16 masks[kVectors];
      for (int64_t v = 0; v < kVectors; ++v) {
        const int64_t cols = std::clamp<int64_t>(n_ - p * kPanel - 16 * v, 0, 16);
        masks[v] = static_cast<__mmask16>((1u << cols) - 1);
      }
      float* c_panel = c + p * kPanel;
      switch (PanelWidth(p) / 16) {
        case 1: Rows<1>(a, lda, m, panel, c_panel, ldc, masks); break;
        case 2: Rows<2>(a, lda, m, panel, c_panel, ldc, masks); break;
        default: Rows<3>(a, lda, m, panel, c_panel, ldc, masks); break;
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
  // A tile of C is R rows x (16 V) columns: R * V accumulators, which with
  // R = 8 and V = 3 fill 24 of the 32 vector registers.
  static constexpr int64_t kVectors = 3;
  static constexpr int64_t kPanel = 16 * kVectors;

  // Floats per row of K in panel `p`: kPanel, or fewer for the last panel.
  int64_t PanelWidth(int64_t p) const {
    const int64_t cols = std::min<int64_t>(kPanel, n_ - p * kPanel);
    return 16 * ((cols + 15) / 16);
  }

  template <int V>
  void Rows(const float* a, int64_t lda, int64_t m, const float* panel, float* c, int64_t ldc,
            const __mmask16* masks) const {
    int64_t r = 0;
    for (; r + 8 <= m; r += 8) Tile<8, V>(a + r * lda, lda, panel, c + r * ldc, ldc, masks);
    switch (m - r) {
      case 7: Tile<7, V>(a + r * lda, lda, panel, c + r * ldc, ldc, masks); break;
      case 6: Tile<6, V>(a + r * lda, lda, panel, c + r * ldc, ldc, masks); break;
      case 5: Tile<5, V>(a + r * lda, lda, panel, c + r * ldc, ldc, masks); break;
      case 4: Tile<4, V>(a + r * lda, lda, panel, c + r * ldc, ldc, masks); break;
      case 3: Tile<3, V>(a + r * lda, lda, panel, c + r * ldc, ldc, masks); break;
      case 2: Tile<2, V>(a + r * lda, lda, panel, c + r * ldc, ldc, masks); break;
      case 1: Tile<1, V>(a + r * lda, lda, panel, c + r * ldc, ldc, masks); break;
      default: break;
    }
  }

  template <int R, int V>
  void Tile(const float* a, int64_t lda, const float* panel, float* c, int64_t ldc,
            const __mmask16* masks) const {
    constexpr int64_t kWidth = 16 * V;
    __m512 acc[R][V];
    for (int r = 0; r < R; ++r) {
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();
    }
    for (int64_t kk = 0; kk < k_; ++kk) {
      __m512 b[V];
      for (int v = 0; v < V; ++v) b[v] = _mm512_load_ps(panel + kk * kWidth + 16 * v);
      for (int r = 0; r < R; ++r) {
        const __m512 x = _mm512_set1_ps(a[r * lda + kk]);
        for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(x, b[v], acc[r][v]);
      }
    }
    for (int r = 0; r < R; ++r) {
      for (int v = 0; v < V; ++v) {
        _mm512_mask_storeu_ps(c + r * ldc + 16 * v, masks[v], acc[r][v]);
      }
    }
  }

  int64_t panels_ = 0;
  float* packed_ = nullptr;
#endif
  const float* src_;
  int64_t k_, n_, stride_;
  bool transpose_;
};

// How the batch rows are cut into blocks: `blocks` blocks, the first
// `head_blocks` of `rows` rows, the others of `tail_rows` (the last one may
// be shorter).
struct RowBlockPlan {
  int64_t rows = 1;
  int64_t blocks = 1;
  int64_t head_blocks = 1;
  int64_t tail_rows = 1;

  // The first row and the number of rows of `block`, for `batch` rows.
  void Range(int64_t block, int64_t batch, int64_t* first, int64_t* count) const {
    *first = block < head_blocks ? block * rows
                                 : head_blocks * rows + (block - head_blocks) * tail_rows;
    *count = std::max<int64_t>(
        0, std::min(batch, *first + (block < head_blocks ? rows : tail_rows)) - *first);
  }
};

// Rows of the step product's register tile (`StepProduct::Tile<8>`).
constexpr int64_t kTileRows = 8;
// Blocks per thread: enough that a thread running at half speed (sharing
// its core with another program) leaves at most about one block's time of
// waiting at the end, few enough that each block keeps whole tiles.
constexpr int64_t kBlocksPerThread = 8;
// Weights (floats) a block streams through per step beyond which blocks get
// at least two tiles of rows: above about twice a core's L2 cache (2 MiB),
// every block reads most of them from the shared cache at every step.
constexpr int64_t kCachedWeights = 1 << 19;
// Under op determinism: rows per block, whatever the number of threads.
constexpr int64_t kDeterministicRows = 16;

// The blocks for `batch` rows on `threads` threads, for step products that
// read `weights` floats (input and recurrent kernels) per step.
RowBlockPlan PlanRowBlocks(int64_t batch, int64_t weights, int64_t threads,
                           bool deterministic) {
  RowBlockPlan plan;
  batch = std::max<int64_t>(batch, 1);
  const int64_t min_rows = weights > kCachedWeights ? 2 * kTileRows : kTileRows;
  if (deterministic) {
    plan.rows = kDeterministicRows;
  } else {
    const int64_t wanted = std::max<int64_t>(1, threads) * kBlocksPerThread;
    const int64_t tiles = ((batch + wanted - 1) / wanted + kTileRows - 1) / kTileRows;
    plan.rows = std::max(min_rows, tiles * kTileRows);
  }
  plan.rows = std::min(plan.rows, batch);
  plan.blocks = (batch + plan.rows - 1) / plan.rows;
  plan.head_blocks = plan.blocks;
  plan.tail_rows = plan.rows;
  // The last blocks, one per thread, are cut in half where the halves keep
  // whole tiles: the wait at the end for the slowest thread's last block
  // (a block on a core shared with another program takes twice as long) is
  // then half as long.
  const int64_t half = plan.rows / 2;
  if (!deterministic && threads > 1 && plan.blocks > threads && half % kTileRows == 0 &&
      half >= min_rows) {
    plan.head_blocks = plan.blocks - threads;
    plan.tail_rows = half;
    const int64_t rest = batch - plan.head_blocks * plan.rows;
    plan.blocks = plan.head_blocks + (rest + half - 1) / half;
  }
  return plan;
}

// Threads for the blocks. TensorFlow's intra-op pool, as a custom op sees it,
// can be a single thread whatever the settings (builds whose products run
// on oneDNN's OpenMP threads keep it so), which would leave every block on
// the calling thread; the kernels therefore keep their own helper threads,
// started on first use and then asleep between calls. A child process
// created by fork() gets fresh ones.
class HelperThreads {
 public:
  static HelperThreads& ForThisProcess() {
    static std::mutex creation;
    static HelperThreads* helpers = nullptr;
    std::lock_guard<std::mutex> lock(creation);
    if (helpers == nullptr || helpers->process_ != getpid()) {
      // Never deleted: the threads sleep on it until the process ends (and a
      // forked child's copy has no threads behind it).
      helpers = new HelperThreads();
    }
    return *helpers;
  }

  // Runs `task` on a helper thread, starting helpers up to `wanted` threads.
  void Schedule(std::function<void()> task, int64_t wanted) {
    std::lock_guard<std::mutex> lock(mutex_);
    while (started_ < wanted) {
      std::thread([this] { Serve(); }).detach();
      ++started_;
    }
    tasks_.push_back(std::move(task));
    ready_.notify_one();
  }

 private:
  HelperThreads() : process_(getpid()) {}

  void Serve() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return !tasks_.empty(); });
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  const pid_t process_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> tasks_;
  int64_t started_ = 0;
};

// CPUs this process may run on.
int64_t AvailableCpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max<int64_t>(1, std::thread::hardware_concurrency());
}

// Threads a kernel runs its blocks on (the caller included): `requested`
// when positive (the op's `threads` attribute, from ZOO_KERNEL_THREADS),
// else the larger of TensorFlow's intra-op pool and the available CPUs.
int64_t KernelThreads(OpKernelContext* context, int64_t requested) {
  if (requested > 0) return requested;
  const int64_t pool =
      context->device()->tensorflow_cpu_worker_threads()->workers->NumThreads();
  return std::max(pool, AvailableCpus());
}

RowBlockPlan PlanRowBlocks(int64_t batch, int64_t weights, int64_t threads) {
  return PlanRowBlocks(batch, weights, threads, tensorflow::OpDeterminismRequired());
}

// Keeps the calling helper thread off `cpu` (the CPU of the thread that
// scheduled its blocks), within the CPUs the helper could use when it first
// ran. A helper woken while every CPU is busy is otherwise often placed on
// its waker's CPU, and the two then share one core for the whole call while
// another core runs only the other program: with one core busy, a call ran
// at about half its quiet speed instead of three quarters. Nothing changes
// where only one CPU is allowed or `cpu` is unknown.
void StayOffCpu(int cpu) {
  thread_local bool known = false;
  thread_local cpu_set_t allowed;
  thread_local int avoided = -1;
  if (!known) {
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return;
    known = true;
  }
  if (cpu == avoided) return;
  cpu_set_t wanted = allowed;
  if (cpu >= 0 && cpu < CPU_SETSIZE && CPU_ISSET(cpu, &wanted) && CPU_COUNT(&wanted) > 1) {
    CPU_CLR(cpu, &wanted);
  }
  if (sched_setaffinity(0, sizeof(wanted), &wanted) == 0) avoided = cpu;
}

// Runs `work(block, first_row, rows)` for every block of `plan` on `threads`
// threads. The blocks form a shared queue: the calling thread and up to
// (threads - 1) helper threads each take the next block until none is left, so a thread that
// runs slowly (its core busy with another program) simply takes fewer. Once
// the queue is empty the caller sleeps until the blocks that other threads
// took have finished (sleeping, not spinning, leaves its core to them). If
// the helpers are all busy (say, with other kernels' blocks), the caller
// runs every block itself, so the wait cannot deadlock.
void ForEachRowBlock(int64_t threads, int64_t batch, const RowBlockPlan& plan,
                     const std::function<void(int64_t, int64_t, int64_t)>& work) {
  const int64_t blocks = plan.blocks;
  if (blocks == 1) {
    work(0, 0, batch);
    return;
  }
  struct Progress {
    std::atomic<int64_t> next{0};
    std::mutex mutex;
    std::condition_variable all_done;
    int64_t finished = 0;  // guarded by `mutex`
  };
  auto progress = std::make_shared<Progress>();
  // `work` lives on the caller's stack: it is only touched for a claimed
  // block, and the caller returns only after every block has finished, so a
  // helper that starts late finds nothing to claim and never touches it.
  const auto* job = &work;
  auto drain = [progress, job, plan, batch] {
    int64_t done = 0;
    for (int64_t block; (block = progress->next.fetch_add(1)) < plan.blocks;) {
      int64_t first, rows;
      plan.Range(block, batch, &first, &rows);
      if (rows > 0) (*job)(block, first, rows);
      ++done;
    }
    if (done == 0) return;
    std::lock_guard<std::mutex> lock(progress->mutex);
    progress->finished += done;
    if (progress->finished == plan.blocks) progress->all_done.notify_all();
  };
  const int64_t helpers = std::min(blocks, threads) - 1;
  HelperThreads& pool = HelperThreads::ForThisProcess();
  const int caller_cpu = sched_getcpu();
  for (int64_t helper = 0; helper < helpers; ++helper) {
    pool.Schedule([drain, caller_cpu] {
      StayOffCpu(caller_cpu);
      drain();
    }, threads - 1);
  }
  drain();
  std::unique_lock<std::mutex> lock(progress->mutex);
  progress->all_done.wait(lock, [&] { return progress->finished == blocks; });
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
    OP_REQUIRES_OK(context, context->GetAttr("threads", &threads_));
    cell_ = ParseCell(cell);
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& x = context->input(0);
    const Tensor& kernel = context->input(1);
    const Tensor& bias = context->input(2);
    const Tensor& recurrent_kernel = context->input(3);
    const Tensor& recurrent_bias = context->input(4);
    const Tensor& h0 = context->input(5);
    const Tensor& c0 = context->input(6);
    const Tensor& mask = context->input(7);
    OP_REQUIRES_OK(context, CheckRank(x, 3, "x"));
    OP_REQUIRES_OK(context, CheckRank(kernel, 2, "kernel"));
    OP_REQUIRES_OK(context, CheckRank(recurrent_kernel, 2, "recurrent_kernel"));
    OP_REQUIRES_OK(context, CheckRank(h0, 2, "h0"));
    const int64_t steps = x.dim_size(0), batch = x.dim_size(1), inputs = x.dim_size(2);
    const int64_t units = recurrent_kernel.dim_size(0);
    const int64_t width = Gates(cell_) * units;
    OP_REQUIRES(context,
                recurrent_kernel.dim_size(1) == width && kernel.dim_size(0) == inputs &&
                    kernel.dim_size(1) == width && bias.NumElements() == width,
                InvalidArgument("recurrent_kernel must be (H, ", Gates(cell_), "H), kernel (I, ",
                                Gates(cell_), "H) and bias (", Gates(cell_),
                                "H) for inputs x of shape (T, B, I); received ",
                                recurrent_kernel.shape().DebugString(), ", ",
                                kernel.shape().DebugString(), ", ", bias.shape().DebugString(),
                                " and ", x.shape().DebugString()));
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

    Tensor *h_seq = nullptr, *h_last = nullptr, *c_last = nullptr, *saved = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, TensorShape({steps, batch, units}),
                                                     &h_seq));
    OP_REQUIRES_OK(context, context->allocate_output(1, h0.shape(), &h_last));
    OP_REQUIRES_OK(context, context->allocate_output(
                                2, lstm ? h0.shape() : TensorShape({0}), &c_last));
    OP_REQUIRES_OK(context,
                   context->allocate_output(
                       3, TensorShape({save_ ? steps : 0, batch, Saved(cell_) * units}),
                       &saved));

    Args args;
    args.steps = steps;
    args.batch = batch;
    args.inputs = inputs;
    args.units = units;
    args.x = x.flat<float>().data();
    args.bias = bias.flat<float>().data();
    args.recurrent_bias =
        cell_ == Cell::kGRUResetAfter ? recurrent_bias.flat<float>().data() : nullptr;
    args.h0 = h0.flat<float>().data();
    args.c0 = lstm ? c0.flat<float>().data() : nullptr;
    args.mask = masked ? mask.flat<float>().data() : nullptr;
    args.h_seq = h_seq->flat<float>().data();
    args.h_last = h_last->flat<float>().data();
    args.c_last = lstm ? c_last->flat<float>().data() : nullptr;
    args.saved = save_ ? saved->flat<float>().data() : nullptr;
    if (steps == 0) {
      std::copy_n(args.h0, batch * units, args.h_last);
      if (lstm) std::copy_n(args.c0, batch * units, args.c_last);
      return;
    }
    const float* recurrent = recurrent_kernel.flat<float>().data();
    // The first 2H columns of the GRU kernel (z and r) act on h, the last H on r*h.
    const int64_t width_on_h = cell_ == Cell::kGRU ? 2 * units : width;
    const StepProduct from_x(kernel.flat<float>().data(), inputs, width, width, false);
    const StepProduct on_h(recurrent, units, width_on_h, width, false);
    const StepProduct on_reset_h(recurrent + 2 * units, units,
                                 cell_ == Cell::kGRU ? units : 0, width, false);
    const int64_t threads = KernelThreads(context, threads_);
    const RowBlockPlan plan = PlanRowBlocks(batch, (inputs + units) * width, threads);
    ForEachRowBlock(threads, batch, plan,
                    [&](int64_t, int64_t first, int64_t rows) {
                      Run(args, from_x, on_h, on_reset_h, first, rows);
                    });
  }

 private:
  struct Args {
    int64_t steps, batch, inputs, units;
    const float *x, *bias, *recurrent_bias, *h0, *c0, *mask;
    float *h_seq, *h_last, *c_last, *saved;
  };

  void Run(const Args& a, const StepProduct& from_x, const StepProduct& on_h,
           const StepProduct& on_reset_h, int64_t first, int64_t rows) const {
    const int64_t H = a.units, B = a.batch, I = a.inputs;
    const int64_t G = Gates(cell_), S = Saved(cell_) * H;
    // Per step: `pre` = x_t W + b, `gates` = h_{t-1} U (then activated).
    Floats pre(rows * G * H), gates(rows * G * H);
    Floats reset_h(cell_ == Cell::kGRU ? rows * H : 0);
    Floats cell(cell_ == Cell::kLSTM ? rows * H : 0);
    if (cell_ == Cell::kLSTM) std::copy_n(a.c0 + first * H, rows * H, cell.data());
    ConstVector bias(a.bias, G * H);

    for (int64_t t = 0; t < a.steps; ++t) {
      const float* h_prev = t == 0 ? a.h0 + first * H : a.h_seq + ((t - 1) * B + first) * H;
      float* h_out = a.h_seq + (t * B + first) * H;
      float* keep = a.saved ? a.saved + (t * B + first) * S : nullptr;
      from_x.Multiply(a.x + (t * B + first) * I, I, rows, pre.data(), G * H);
      for (int64_t r = 0; r < rows; ++r) Vector(pre.data() + r * G * H, G * H) += bias;
      on_h.Multiply(h_prev, H, rows, gates.data(), G * H);

      if (cell_ == Cell::kGRU) {
        // z and r first; then the candidate from (r * h) U_h.
        for (int64_t r = 0; r < rows; ++r) {
          Vector zr(gates.data() + r * G * H, 2 * H);
          zr = Sigmoid(zr + ConstVector(pre.data() + r * G * H, 2 * H));
          Vector(reset_h.data() + r * H, H) =
              zr.segment(H, H) * ConstVector(h_prev + r * H, H);
        }
        on_reset_h.Multiply(reset_h.data(), H, rows, gates.data() + 2 * H, G * H);
      }

      for (int64_t r = 0; r < rows; ++r) {
        const bool runs = !a.mask || a.mask[t * B + first + r] != 0.0f;
        float* g = gates.data() + r * G * H;
        const float* p = pre.data() + r * G * H;
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
            Vector pre_activation(g, H);
            pre_activation += ConstVector(p, H);
            if (cell_ == Cell::kTanh) {
              h_new = pre_activation.tanh();
            } else if (cell_ == Cell::kSigmoid) {
              h_new = Sigmoid(pre_activation);
            } else if (cell_ == Cell::kRelu) {
              h_new = pre_activation.max(0.0f);
            } else {
              h_new = pre_activation;
            }
          }
        }
      }
    }
    std::copy_n(a.h_seq + ((a.steps - 1) * B + first) * H, rows * H, a.h_last + first * H);
    if (cell_ == Cell::kLSTM) std::copy_n(cell.data(), rows * H, a.c_last + first * H);
  }

  Cell cell_;
  bool save_;
  int64_t threads_;
};

// ---------------------------------------------------------------------------
// Backward
// ---------------------------------------------------------------------------

class RecurrenceBackwardOp : public OpKernel {
 public:
  explicit RecurrenceBackwardOp(OpKernelConstruction* context) : OpKernel(context) {
    std::string cell;
    OP_REQUIRES_OK(context, context->GetAttr("cell", &cell));
    OP_REQUIRES_OK(context, context->GetAttr("input_gradient", &input_gradient_));
    OP_REQUIRES_OK(context, context->GetAttr("threads", &threads_));
    cell_ = ParseCell(cell);
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& x = context->input(0);
    const Tensor& kernel = context->input(1);
    const Tensor& recurrent_kernel = context->input(2);
    const Tensor& h0 = context->input(3);
    const Tensor& c0 = context->input(4);
    const Tensor& h_seq = context->input(5);
    const Tensor& saved = context->input(6);
    const Tensor& mask = context->input(7);
    const Tensor& d_h_seq = context->input(8);
    const Tensor& d_h_last = context->input(9);
    const Tensor& d_c_last = context->input(10);
    OP_REQUIRES_OK(context, CheckRank(x, 3, "x"));
    OP_REQUIRES_OK(context, CheckRank(h_seq, 3, "h_seq"));
    OP_REQUIRES_OK(context, CheckRank(kernel, 2, "kernel"));
    OP_REQUIRES_OK(context, CheckRank(recurrent_kernel, 2, "recurrent_kernel"));
    const int64_t steps = h_seq.dim_size(0), batch = h_seq.dim_size(1);
    const int64_t units = h_seq.dim_size(2), inputs = x.dim_size(2);
    const int64_t width = Gates(cell_) * units;
    const bool lstm = cell_ == Cell::kLSTM;
    OP_REQUIRES(context,
                recurrent_kernel.dim_size(0) == units && recurrent_kernel.dim_size(1) == width &&
                    kernel.dim_size(0) == inputs && kernel.dim_size(1) == width &&
                    x.dim_size(0) == steps && x.dim_size(1) == batch,
                InvalidArgument("x, kernel and recurrent_kernel do not match h_seq"));
    OP_REQUIRES(context, h0.dim_size(0) == batch && h0.dim_size(1) == units,
                InvalidArgument("h0 does not match h_seq"));
    OP_REQUIRES(context,
                Saved(cell_) == 0 ||
                    (saved.dims() == 3 && saved.dim_size(0) == steps &&
                     saved.dim_size(2) == Saved(cell_) * units),
                InvalidArgument("the forward kernel did not keep what the backward pass "
                                "needs (it ran with save=False); received saved of shape ",
                                saved.shape().DebugString()));
    const bool sequence_gradient = d_h_seq.NumElements() > 0;
    OP_REQUIRES(context, !sequence_gradient || d_h_seq.shape() == h_seq.shape(),
                InvalidArgument("d_h_seq must match h_seq or be empty"));
    OP_REQUIRES(context, d_h_last.shape() == h0.shape(),
                InvalidArgument("d_h_last must be (B, H)"));
    OP_REQUIRES(context, !lstm || d_c_last.shape() == h0.shape(),
                InvalidArgument("d_c_last must be (B, H)"));
    const bool masked = mask.NumElements() > 0;

    Tensor *dx = nullptr, *d_kernel = nullptr, *d_bias = nullptr, *d_recurrent = nullptr;
    Tensor *d_recurrent_bias = nullptr, *d_h0 = nullptr, *d_c0 = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(
                                0, input_gradient_ ? x.shape() : TensorShape({0}), &dx));
    OP_REQUIRES_OK(context, context->allocate_output(1, kernel.shape(), &d_kernel));
    OP_REQUIRES_OK(context, context->allocate_output(2, TensorShape({width}), &d_bias));
    OP_REQUIRES_OK(context,
                   context->allocate_output(3, recurrent_kernel.shape(), &d_recurrent));
    OP_REQUIRES_OK(context, context->allocate_output(
                                4,
                                cell_ == Cell::kGRUResetAfter ? TensorShape({units})
                                                              : TensorShape({0}),
                                &d_recurrent_bias));
    OP_REQUIRES_OK(context, context->allocate_output(5, h0.shape(), &d_h0));
    OP_REQUIRES_OK(context, context->allocate_output(
                                6, lstm ? h0.shape() : TensorShape({0}), &d_c0));

    Args args;
    args.steps = steps;
    args.batch = batch;
    args.inputs = inputs;
    args.units = units;
    args.x = x.flat<float>().data();
    args.h0 = h0.flat<float>().data();
    args.c0 = lstm ? c0.flat<float>().data() : nullptr;
    args.h_seq = h_seq.flat<float>().data();
    args.saved = Saved(cell_) ? saved.flat<float>().data() : nullptr;
    args.mask = masked ? mask.flat<float>().data() : nullptr;
    args.d_h_seq = sequence_gradient ? d_h_seq.flat<float>().data() : nullptr;
    args.d_h_last = d_h_last.flat<float>().data();
    args.d_c_last = lstm ? d_c_last.flat<float>().data() : nullptr;
    args.dx = input_gradient_ ? dx->flat<float>().data() : nullptr;
    args.d_h0 = d_h0->flat<float>().data();
    args.d_c0 = lstm ? d_c0->flat<float>().data() : nullptr;

    const int64_t threads = KernelThreads(context, threads_);
    const RowBlockPlan plan = PlanRowBlocks(batch, (inputs + units) * width, threads);
    // One part per block (zeroed by the thread that runs the block), summed
    // in block order: the result does not depend on which thread ran what.
    std::vector<Accumulators> parts(plan.blocks);
    const auto zero = [&](Accumulators* part) {
      part->kernel.assign(inputs * width, 0.0f);
      part->bias.assign(width, 0.0f);
      part->recurrent.assign(units * width, 0.0f);
      part->recurrent_bias.assign(cell_ == Cell::kGRUResetAfter ? units : 0, 0.0f);
    };
    const float* recurrent = recurrent_kernel.flat<float>().data();
    // The part of the recurrent kernel multiplied by the step's d_pre rows:
    // all of it, or the z and r blocks for the GRU (its candidate block acts
    // on r*h).
    const int64_t product_width = cell_ == Cell::kGRU ? 2 * units : width;
    if (steps > 0) {
      const StepProduct to_h(recurrent, product_width, units, width, true);
      const StepProduct to_reset_h(recurrent + 2 * units, cell_ == Cell::kGRU ? units : 0,
                                   units, width, true);
      const StepProduct to_x(kernel.flat<float>().data(), input_gradient_ ? width : 0,
                             inputs, width, true);
      ForEachRowBlock(threads, batch, plan,
                      [&](int64_t block, int64_t first, int64_t rows) {
                        zero(&parts[block]);
                        Run(args, to_h, to_reset_h, to_x, first, rows,
                            &parts[block]);
                      });
    } else {
      for (auto& part : parts) zero(&part);
      std::copy_n(args.d_h_last, batch * units, args.d_h0);
      if (lstm) std::copy_n(args.d_c_last, batch * units, args.d_c0);
    }
    Sum(parts, &Accumulators::kernel, d_kernel);
    Sum(parts, &Accumulators::bias, d_bias);
    Sum(parts, &Accumulators::recurrent, d_recurrent);
    Sum(parts, &Accumulators::recurrent_bias, d_recurrent_bias);
  }

 private:
  struct Args {
    int64_t steps, batch, inputs, units;
    const float *x, *h0, *c0, *h_seq, *saved, *mask, *d_h_seq, *d_h_last, *d_c_last;
    float *dx, *d_h0, *d_c0;
  };

  // One block's share of the weight gradients.
  struct Accumulators {
    Floats kernel, bias, recurrent, recurrent_bias;
  };

  static void Sum(const std::vector<Accumulators>& parts,
                  Floats Accumulators::*field, Tensor* out) {
    float* target = out->flat<float>().data();
    const int64_t size = out->NumElements();
    std::fill_n(target, size, 0.0f);
    for (const auto& part : parts) {
      const Floats& values = part.*field;
      for (int64_t i = 0; i < size; ++i) target[i] += values[i];
    }
  }

  void Run(const Args& a, const StepProduct& to_h, const StepProduct& to_reset_h,
           const StepProduct& to_x, int64_t first, int64_t rows,
           Accumulators* acc) const {
    const int64_t H = a.units, B = a.batch, I = a.inputs;
    const int64_t G = Gates(cell_), S = Saved(cell_) * H, GH = G * H;
    const bool gru = cell_ == Cell::kGRU, after = cell_ == Cell::kGRUResetAfter;
    // Steps per chunk of the weight gradients: about 512 rows per product.
    const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(64, 512 / rows));
    // Per chunk: the pre-activation gradients (and, after the reset gate, those
    // of the recurrent product), the inputs, the previous states (and r*h).
    Floats d_pre(chunk * rows * GH), d_rec(after ? chunk * rows * GH : 0);
    Floats x_rows(chunk * rows * I), h_rows(chunk * rows * H);
    Floats rh_rows(gru ? chunk * rows * H : 0);
    // Carried gradients of h (and of c for the LSTM); the step's d_pre U^T.
    Floats dh(a.d_h_last + first * H, a.d_h_last + (first + rows) * H);
    Floats dc(cell_ == Cell::kLSTM ? rows * H : 0);
    Floats back(rows * H), d_reset_h(gru ? rows * H : 0), scratch(H);
    if (cell_ == Cell::kLSTM) std::copy_n(a.d_c_last + first * H, rows * H, dc.data());

    for (int64_t t = a.steps - 1; t >= 0; --t) {
      const int64_t chunk_start = (t / chunk) * chunk;
      const int64_t slot = (t - chunk_start) * rows;  // first row of this step in the chunk
      const int64_t row0 = t * B + first;
      const float* h_prev = t == 0 ? a.h0 + first * H : a.h_seq + (row0 - B) * H;
      const float* h_now = a.h_seq + row0 * H;
      const float* keep = a.saved ? a.saved + row0 * S : nullptr;
      float* d_step = d_pre.data() + slot * GH;
      float* d_rec_step = after ? d_rec.data() + slot * GH : nullptr;
      std::copy_n(a.x + row0 * I, rows * I, x_rows.data() + slot * I);
      std::copy_n(h_prev, rows * H, h_rows.data() + slot * H);
      if (a.d_h_seq) Vector(dh.data(), rows * H) += ConstVector(a.d_h_seq + row0 * H, rows * H);

      for (int64_t r = 0; r < rows; ++r) {
        const float m = a.mask ? a.mask[row0 + r] : 1.0f;
        Vector d_h(dh.data() + r * H, H);
        ConstVector h_last(h_prev + r * H, H);
        float* d = d_step + r * GH;
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
            Vector(rh_rows.data() + (slot + r) * H, H) = rg * h_last;
            break;
          }
          case Cell::kGRUResetAfter: {
            ConstVector z(k, H), rg(k + H, H), candidate(k + 2 * H, H), recurrent(k + 3 * H, H);
            Vector d_candidate(d + 2 * H, H);
            d_candidate = d_h * z * (1.0f - candidate.square()) * m;
            Vector(d, H) = d_h * (candidate - h_last) * z * (1.0f - z) * m;
            Vector(d + H, H) = d_candidate * recurrent * rg * (1.0f - rg);
            float* dr = d_rec_step + r * GH;
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

      if (gru) {
        // d(r*h) = d_candidate U_h^T, then the reset gate's derivative.
        to_reset_h.Multiply(d_step + 2 * H, GH, rows, d_reset_h.data(), H);
        for (int64_t r = 0; r < rows; ++r) {
          const float* k = keep + r * S;
          ConstVector rg(k + H, H), h_last(h_prev + r * H, H);
          ConstVector d_rh(d_reset_h.data() + r * H, H);
          Vector(d_step + r * GH + H, H) = d_rh * h_last * rg * (1.0f - rg);
        }
      }
      if (a.dx) to_x.Multiply(d_step, GH, rows, a.dx + row0 * I, I);

      // d h_{t-1} = d_pre U^T (+ what bypasses the product).
      to_h.Multiply(after ? d_rec_step : d_step, GH, rows, back.data(), H);
      for (int64_t r = 0; r < rows; ++r) {
        const float m = a.mask ? a.mask[row0 + r] : 1.0f;
        Vector d_h(dh.data() + r * H, H);
        ConstVector through(back.data() + r * H, H);
        if (gru || after) {
          ConstVector z(keep + r * S, H);
          if (gru) {
            d_h = through + d_h * (1.0f - z * m) +
                  ConstVector(d_reset_h.data() + r * H, H) * ConstVector(keep + r * S + H, H);
          } else {
            d_h = through + d_h * (1.0f - z * m);
          }
        } else {
          d_h = through + d_h * (1.0f - m);
        }
      }

      if (t == chunk_start) {
        const int64_t n = (std::min(a.steps, chunk_start + chunk) - chunk_start) * rows;
        AccumulateWeights(n, x_rows.data(), h_rows.data(), rh_rows.data(), d_pre.data(),
                          d_rec.data(), I, H, acc);
      }
    }
    std::copy_n(dh.data(), rows * H, a.d_h0 + first * H);
    if (cell_ == Cell::kLSTM) std::copy_n(dc.data(), rows * H, a.d_c0 + first * H);
  }

  // Adds a chunk's weight gradients: x^T d_pre, colsum(d_pre), and the
  // recurrent kernel's products with the states that fed each gate block.
  void AccumulateWeights(int64_t n, const float* x_rows, const float* h_rows,
                         const float* rh_rows, const float* d_pre, const float* d_rec,
                         int64_t I, int64_t H, Accumulators* acc) const {
    const int64_t GH = Gates(cell_) * H;
    ConstMatrixView d(d_pre, n, GH, Stride(GH));
    ConstMatrixView h(h_rows, n, H, Stride(H));
    MatrixView(acc->kernel.data(), I, GH, Stride(GH)).noalias() +=
        ConstMatrixView(x_rows, n, I, Stride(I)).transpose() * d;
    Eigen::Map<Eigen::RowVectorXf>(acc->bias.data(), GH) += d.colwise().sum();
    MatrixView recurrent(acc->recurrent.data(), H, GH, Stride(GH));
    if (cell_ == Cell::kGRU) {
      recurrent.leftCols(2 * H).noalias() += h.transpose() * d.leftCols(2 * H);
      recurrent.rightCols(H).noalias() +=
          ConstMatrixView(rh_rows, n, H, Stride(H)).transpose() * d.rightCols(H);
    } else if (cell_ == Cell::kGRUResetAfter) {
      ConstMatrixView dr(d_rec, n, GH, Stride(GH));
      recurrent.noalias() += h.transpose() * dr;
      Eigen::Map<Eigen::RowVectorXf>(acc->recurrent_bias.data(), H) +=
          dr.rightCols(H).colwise().sum();
    } else {
      recurrent.noalias() += h.transpose() * d;
    }
  }

  Cell cell_;
  bool input_gradient_;
  int64_t threads_;
};

// ---------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------

int SavedFromName(const std::string& cell) { return Saved(ParseCell(cell)); }

Status ForwardShape(InferenceContext* c) {
  ShapeHandle x, recurrent_kernel, h0;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &x));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 2, &recurrent_kernel));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(5), 2, &h0));
  std::string cell;
  bool save;
  TF_RETURN_IF_ERROR(c->GetAttr("cell", &cell));
  TF_RETURN_IF_ERROR(c->GetAttr("save", &save));
  DimensionHandle steps = c->Dim(x, 0), batch = c->Dim(x, 1);
  DimensionHandle units = c->Dim(recurrent_kernel, 0);
  c->set_output(0, c->MakeShape({steps, batch, units}));
  c->set_output(1, c->MakeShape({batch, units}));
  c->set_output(2, cell == "lstm" ? c->MakeShape({batch, units}) : c->MakeShape({0}));
  DimensionHandle saved_width;
  TF_RETURN_IF_ERROR(c->Multiply(units, SavedFromName(cell), &saved_width));
  c->set_output(3, c->MakeShape({save ? steps : c->MakeDim(0), batch, saved_width}));
  return Status();
}

Status BackwardShape(InferenceContext* c) {
  std::string cell;
  bool input_gradient;
  TF_RETURN_IF_ERROR(c->GetAttr("cell", &cell));
  TF_RETURN_IF_ERROR(c->GetAttr("input_gradient", &input_gradient));
  ShapeHandle recurrent_kernel;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &recurrent_kernel));
  c->set_output(0, input_gradient ? c->input(0) : c->MakeShape({0}));
  c->set_output(1, c->input(1));
  c->set_output(2, c->MakeShape({c->Dim(recurrent_kernel, 1)}));
  c->set_output(3, c->input(2));
  c->set_output(4, cell == "gru_reset_after" ? c->MakeShape({c->Dim(recurrent_kernel, 0)})
                                             : c->MakeShape({0}));
  c->set_output(5, c->input(3));
  c->set_output(6, cell == "lstm" ? c->input(3) : c->MakeShape({0}));
  return Status();
}

REGISTER_OP("ZooRecurrenceForward")
    .Input("x: float")
    .Input("kernel: float")
    .Input("bias: float")
    .Input("recurrent_kernel: float")
    .Input("recurrent_bias: float")
    .Input("h0: float")
    .Input("c0: float")
    .Input("mask: float")
    .Output("h_seq: float")
    .Output("h_last: float")
    .Output("c_last: float")
    .Output("saved: float")
    .Attr(kCellAttr)
    .Attr("save: bool = true")
    .Attr("threads: int = 0")
    .SetShapeFn(ForwardShape)
    .Doc("A zoo recurrence over a whole sequence (see zoo/layers/native.py).");

REGISTER_OP("ZooRecurrenceBackward")
    .Input("x: float")
    .Input("kernel: float")
    .Input("recurrent_kernel: float")
    .Input("h0: float")
    .Input("c0: float")
    .Input("h_seq: float")
    .Input("saved: float")
    .Input("mask: float")
    .Input("d_h_seq: float")
    .Input("d_h_last: float")
    .Input("d_c_last: float")
    .Output("dx: float")
    .Output("d_kernel: float")
    .Output("d_bias: float")
    .Output("d_recurrent_kernel: float")
    .Output("d_recurrent_bias: float")
    .Output("d_h0: float")
    .Output("d_c0: float")
    .Attr(kCellAttr)
    .Attr("input_gradient: bool = true")
    .Attr("threads: int = 0")
    .SetShapeFn(BackwardShape)
    .Doc("Backpropagation through time of ZooRecurrenceForward.");

// The row blocks the kernels would use: for tests and `native.row_block_plan`.
class RowBlockPlanOp : public OpKernel {
 public:
  explicit RowBlockPlanOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("batch", &batch_));
    OP_REQUIRES_OK(context, context->GetAttr("weights", &weights_));
    OP_REQUIRES_OK(context, context->GetAttr("threads", &threads_));
  }

  void Compute(OpKernelContext* context) override {
    const int64_t threads = KernelThreads(context, threads_);
    const RowBlockPlan plan = PlanRowBlocks(batch_, weights_, threads);
    Tensor* out = nullptr;
    OP_REQUIRES_OK(context,
                   context->allocate_output(0, TensorShape({3 + 2 * plan.blocks}), &out));
    auto values = out->flat<int64_t>();
    values(0) = plan.rows;
    values(1) = plan.blocks;
    values(2) = threads;
    const int64_t batch = std::max<int64_t>(batch_, 1);  // as the kernels see it
    for (int64_t block = 0; block < plan.blocks; ++block) {
      plan.Range(block, batch, &values(3 + 2 * block), &values(4 + 2 * block));
    }
  }

 private:
  int64_t batch_, weights_, threads_;
};

REGISTER_OP("ZooRecurrenceBlockPlan")
    .Output("plan: int64")
    .Attr("batch: int >= 0")
    .Attr("weights: int >= 0")
    .Attr("threads: int = 0")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Vector(InferenceContext::kUnknownDim));
      return Status();
    })
    .Doc("Rows of the first blocks, blocks and threads of the recurrence kernels (threads 0: "
         "automatic), then each block's first row and rows, in queue order.");

REGISTER_KERNEL_BUILDER(Name("ZooRecurrenceBlockPlan").Device(tensorflow::DEVICE_CPU),
                        RowBlockPlanOp);
REGISTER_KERNEL_BUILDER(Name("ZooRecurrenceForward").Device(tensorflow::DEVICE_CPU),
                        RecurrenceForwardOp);
REGISTER_KERNEL_BUILDER(Name("ZooRecurrenceBackward").Device(tensorflow::DEVICE_CPU),
                        RecurrenceBackwardOp);

}  // namespace
}  // namespace zoo
