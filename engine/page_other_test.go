//go:build !unix

package engine_test

import "testing"

func benchFreshPage(b *testing.B) { b.Skip("needs mmap") }
