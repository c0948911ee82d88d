"""funcgrad.scipy: SciPy's API over funcgrad arrays (``linalg``), differentiable and jittable."""

from funcgrad.scipy import linalg as linalg
