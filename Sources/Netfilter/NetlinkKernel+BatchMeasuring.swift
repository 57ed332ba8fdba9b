import Ruleset

extension NetlinkKernel: BatchMeasuring {}
