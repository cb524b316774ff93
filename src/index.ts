// Public API, the same in Node and the browser (src/browser.ts re-exports it; nothing here may
// import Node modules). Node users get it with the Node-only parts from src/node.ts, the
// package's main: createNodeContext(), gentleWait. Browser or host apps: GpuContext.fromDevice(device).
export { GpuContext, GpuError, describeAdapterInfo, type ContextOptions, type MatmulKernelChoice } from './gpu/context.js';
export { ReadPacer } from './gpu/pacer.js';
export { Kernel, type KernelConstants, type BufferBinding, type BindingResource } from './gpu/kernel.js';
export { type Dispatch, DispatchEncoder, encodeDispatch, runDispatches } from './gpu/dispatch.js';
export { OPERAND_TEXTURE_WIDTH, PANEL_TEXELS, OperandTextures, type OperandTexture, type PanelLayout, type TextureCopy } from './gpu/operand-textures.js';
export { BufferUsage, MapMode, TextureUsage } from './gpu/flags.js';
export { PassTimer, median, type PassTiming } from './gpu/profiler.js';
export { chromeTrace, type TraceSpan } from './gpu/trace.js';
export { matmul, type MatmulSpec, type MatmulBuffers, type MatmulEpilogue, type MatmulConv, type Activation } from './kernels/matmul.js';
export { MATMUL_VARIANTS, type MatmulVariant, type MatmulFamily, type MatmulTile, type MatmulTileQuery } from './kernels/matmul-variants.js';
export { MatmulTuner, type MatmulTuningOptions, type PendingProduct } from './kernels/matmul-tuner.js';
export { MemoryTuningStore, localStorageTuningStore, TUNING_STORAGE_KEY, type TuningStore, type TuningRecord, type TunedProduct } from './gpu/tuning-store.js';
export { Graph, GraphError, type Node } from './graph/graph.js';
export { OPS, opRule, lossOps, type OpRule, type OpNode, type GradientRule, type GradientRequest, type Lowered, type LowerEnv, type ShapeContext } from './graph/registry.js';
export { Tensor } from './graph/tensor.js';
export { CompiledGraph, type CompileOptions, type OptimizerConfig } from './graph/recorder.js';
export { decaysByDefault, scheduledLr, SCHEDULES, type Schedule, type ScheduleKind, type ParamInfo } from './graph/train-control.js';
export { EarlyStopping } from './nn/early-stop.js';
export { ParamStore, type Init } from './nn/params.js';
export { buildNet, fillBatch, IMAGE, type NetConfig, type NetKind, type BuiltNet, type InputLayout } from './nn/nets.js';
export {
  ModelSpecError, Layer, SymbolicTensor, Dense, Conv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, Flatten, Reshape,
  Dropout, Activation as ActivationLayer, Add, Concatenate, LSTM, GRU, SimpleRNN, InputLayer,
  dense, conv2d, maxPool2d, avgPool2d, globalAvgPool2d, flatten, reshape, dropout, activation, lstm, gru, simpleRnn, input, add, concat,
  type ActivationName, type LayerInit, type ParamNames,
} from './nn/layers.js';
export {
  BatchNormalization, LayerNormalization, Embedding, batchNorm, layerNorm, embedding,
  type BatchNormalizationOptions, type NormalizationOptions, type EmbeddingOptions,
} from './nn/norm-layers.js';
export { Model, sequential, model, type LossName, type ModelOptions } from './nn/model.js';
export { modelToSpec, modelFromSpec, modelFromKeras, type ModelSpec, type LayerSpec } from './nn/spec.js';
export { builtinModel, NET_KINDS, type NetKnobs } from './nn/models/builtin.js';
export { Trainer, type TrainerOptions, type TrainMetrics, type EvalResult, type Prediction, type LabelledImages } from './nn/trainer.js';
export { decodeStateFile, encodeStateFile, crc32, StateError, STATE_FORMAT, type TrainerState, type StateTensor } from './nn/state.js';
export { exportOnnx, checkOnnxExportable, EXPORT_RULES, OnnxExportError, ONNX_OPSET, type OnnxExportOptions, type ExportRule, type ExportContext, type OnnxValue, type ParamValues } from './onnx/export.js';
export { trainLoop, trainSteps, type TrainLoopOptions, type TrainStepsOptions, type LoopRead, type LoopProgress, type LoopEpoch, type LoopResult } from './nn/loop.js';
export { exampleSize, formatShape, sliceDataset, type Dataset } from './data/dataset.js';
// Types that the API above names in its signatures (options, roles, plans), exported so users can name them too.
export type { DType, Role, ExternalStorage } from './graph/tensor.js';
export type { Phase } from './graph/graph.js';
export type { Plan } from './graph/planner.js';
export type { LoweredOp } from './graph/recorder.js';
export type { Conv2dOptions } from './graph/ops/conv2d.js';
export type { PoolOptions } from './graph/ops/pool.js';
export type { RecurrentOptions } from './graph/ops/recurrent.js';
export type { ActivationKind } from './graph/ops/activation.js';
export type { RecurrentCell } from './kernels/recurrent.js';
export type { OpProfile } from './nn/trainer.js';
export type { Examples } from './nn/evaluator.js';
export type {
  LayerOptions, DenseOptions, Conv2dLayerOptions, Pool2dOptions, ReshapeOptions, DropoutOptions, ActivationOptions, RecurrentLayerOptions, PaddingName,
} from './nn/layers.js';
