package intmath

import (
	"math"
	"testing"
)

func TestFloorDiv(t *testing.T) {
	tests := []struct{ a, b, want int64 }{
		{0, 86400, 0},
		{1, 86400, 0},
		{86399, 86400, 0},
		{86400, 86400, 1},
		{-1, 86400, -1},
		{-86400, 86400, -1},
		{-86401, 86400, -2},
		{7, -2, -4},
		{-7, -2, 3},
		{6, -2, -3},
		{math.MinInt64, 86400, -106751991167301},
		{math.MaxInt64, 86400, 106751991167300},
	}
	for _, tc := range tests {
		if got := FloorDiv(tc.a, tc.b); got != tc.want {
			t.Errorf("FloorDiv(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		// The defining property: b*q ≤ a < b*(q+1) for b > 0.
		if q := FloorDiv(tc.a, tc.b); tc.b > 0 && (tc.a-q*tc.b < 0 || tc.a-q*tc.b >= tc.b) {
			t.Errorf("FloorDiv(%d, %d) = %d leaves remainder %d", tc.a, tc.b, q, tc.a-q*tc.b)
		}
	}
}
