"""Federation (pure): sub-center health hysteresis and credential checks."""
