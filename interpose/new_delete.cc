// Every C++17 operator new/delete form: one-line forwarders only.
#include <cstddef>
#include <new>

#include "front/alloc_fast.h"

using std::align_val_t;
using std::nothrow_t;
#define AL(a) static_cast<size_t>(a)

AM_EXPORT void* operator new(size_t n) { return am::new_fast(n, AM_API_NEW); }
AM_EXPORT void* operator new[](size_t n) { return am::new_fast(n, AM_API_NEW_ARRAY); }
AM_EXPORT void* operator new(size_t n, const nothrow_t&) noexcept { return am::new_nothrow_fast(n, AM_API_NEW); }
AM_EXPORT void* operator new[](size_t n, const nothrow_t&) noexcept { return am::new_nothrow_fast(n, AM_API_NEW_ARRAY); }
AM_EXPORT void* operator new(size_t n, align_val_t a) { return am::new_aligned(n, AL(a), false, AM_API_NEW); }
AM_EXPORT void* operator new[](size_t n, align_val_t a) { return am::new_aligned(n, AL(a), false, AM_API_NEW_ARRAY); }
AM_EXPORT void* operator new(size_t n, align_val_t a, const nothrow_t&) noexcept { return am::new_aligned(n, AL(a), true, AM_API_NEW); }
AM_EXPORT void* operator new[](size_t n, align_val_t a, const nothrow_t&) noexcept { return am::new_aligned(n, AL(a), true, AM_API_NEW_ARRAY); }

AM_EXPORT void operator delete(void* p) noexcept { am::free_fast(p, AM_API_DELETE); }
AM_EXPORT void operator delete[](void* p) noexcept { am::free_fast(p, AM_API_DELETE_ARRAY); }
AM_EXPORT void operator delete(void* p, const nothrow_t&) noexcept { am::free_fast(p, AM_API_DELETE); }
AM_EXPORT void operator delete[](void* p, const nothrow_t&) noexcept { am::free_fast(p, AM_API_DELETE_ARRAY); }
AM_EXPORT void operator delete(void* p, size_t n) noexcept { am::free_sized_fast(p, n, AM_API_DELETE); }
AM_EXPORT void operator delete[](void* p, size_t n) noexcept { am::free_sized_fast(p, n, AM_API_DELETE_ARRAY); }
AM_EXPORT void operator delete(void* p, align_val_t) noexcept { am::free_fast(p, AM_API_DELETE); }
AM_EXPORT void operator delete[](void* p, align_val_t) noexcept { am::free_fast(p, AM_API_DELETE_ARRAY); }
AM_EXPORT void operator delete(void* p, align_val_t, const nothrow_t&) noexcept { am::free_fast(p, AM_API_DELETE); }
AM_EXPORT void operator delete[](void* p, align_val_t, const nothrow_t&) noexcept { am::free_fast(p, AM_API_DELETE_ARRAY); }
AM_EXPORT void operator delete(void* p, size_t n, align_val_t) noexcept { am::free_sized_fast(p, n, AM_API_DELETE); }
AM_EXPORT void operator delete[](void* p, size_t n, align_val_t) noexcept { am::free_sized_fast(p, n, AM_API_DELETE_ARRAY); }
