// The paper's alignment machinery: permutation specs, activation statistics and correlation,
// matching, and permutation application.
export { solveAssignment, type Assignment, type AssignmentOptions } from './assignment.js';
export { SpecBuilder, validateSpec, groupOfLayer, type AxisMember, type PermutationGroup, type AlignedLayer, type AuxiliaryForward, type PermutationSpec } from './spec.js';
export { permutationSpec } from './specs.js';
export { CrossStatistics, CORRELATION_EPS, SUBSAMPLE_ABOVE_WIDTH, samplesByUnits, subsample2 } from './statistics.js';
export { collectActivations, withAlignmentMode, type ActivationOptions } from './activations.js';
export {
  checkPermutation, identityPermutation, invertPermutation, composePermutations, axisIndices, permuteStateDict, disposeStateDict, randomPermutations,
  type Permutations,
} from './permute.js';
export {
  alignModels, layerCorrelations, matchGroups, layerReports, meanMatchedCorrelation, defaultSolver,
  type AlignmentData, type CorrelationOptions, type LayerCorrelations, type AssignmentSolver, type LayerReport, type ReportOptions, type AlignOptions, type AlignResult,
} from './align.js';
export { SILENT_STD, DEAD_UNIT_METHODS, silentUnits, matchSilentUnits, type DeadUnitMethod, type SilentUnits, type SilentGroupReport, type SilentMatchingResult } from './dead-units.js';
export { weightMatching, weightMatchingObjective, WeightSimilarity, isRunningStatistic, type WeightMatchingOptions, type WeightMatchingResult, type SweepReport } from './weight-matching.js';
export { repairInterpolation, repairableLayers, layerStatistics, REPAIR_STD_FLOOR, type RepairOptions, type ChannelStatistics } from './repair.js';
export * from './interpolate.js';
export * from './barrier.js';
