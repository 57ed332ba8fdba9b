import Ruleset

extension NetfilterError: KernelFailure {}
