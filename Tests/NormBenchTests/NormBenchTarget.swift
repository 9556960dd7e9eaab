// Tests of the NormBench library (records, traffic arithmetic, correctness gate) live in this target.
import NormBench
