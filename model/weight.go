package model

// TotalWeight is the denominator of every traffic weight: weights are integers out of
// 10000, so 1 %, 0.5 % and 0.1 % are exact (100, 50 and 10).
const TotalWeight = 10000
