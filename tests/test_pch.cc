// SPDX-License-Identifier: Apache-2.0
// test_pch.cc: the translation unit that builds the precompiled header every test reuses
// (cmake/IoasidTesting.cmake, IOASID_TEST_PCH). It has no code of its own.
