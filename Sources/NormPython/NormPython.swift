import CPython
import NormCore
