/* SPDX-License-Identifier: Apache-2.0 */
/* export.h: symbol visibility for libioasid. The shared library is built with
 * -fvisibility=hidden; everything public is marked IOASID_API. */
#ifndef IOASID_EXPORT_H
#define IOASID_EXPORT_H

#if defined(IOASID_BUILDING_LIBRARY)
#define IOASID_API __attribute__((visibility("default")))
#else
#define IOASID_API
#endif

#endif /* IOASID_EXPORT_H */
