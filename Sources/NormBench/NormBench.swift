import NormCore
