#include <criterion/criterion.h>
#include <string.h>

#include "axon/status.h"

Test(status, ok_is_zero_and_round_trips)
{
    cr_assert_eq(AX_OK, 0);
    cr_assert_eq(ax_status_to_byte(AX_OK), 0);
    cr_assert_eq(ax_status_from_byte(0), AX_OK);
}

Test(status, every_code_round_trips_through_its_byte)
{
    for (unsigned b = 0; b < 256; b++) {
        ax_status_t s = ax_status_from_byte((uint8_t)b);

        if (s == AX_EUNKNOWN && b != ax_status_to_byte(AX_EUNKNOWN))
            continue;
        cr_assert_eq(ax_status_to_byte(s), b, "byte %u", b);
        cr_assert_neq(strcmp(ax_status_str(s), ""), 0);
    }
}

Test(status, unknown_byte_maps_to_eunknown)
{
    cr_assert_eq(ax_status_from_byte(200), AX_EUNKNOWN);
    cr_assert_eq(ax_status_from_byte(255), AX_EUNKNOWN);
    cr_assert_str_eq(ax_status_name(AX_ENOBUFS), "AX_ENOBUFS");
    cr_assert_str_eq(ax_status_str((ax_status_t)-250), ax_status_str(AX_EUNKNOWN));
    cr_assert_eq(ax_status_to_byte((ax_status_t)-250), ax_status_to_byte(AX_EUNKNOWN));
    cr_assert_eq(ax_status_to_byte((ax_status_t)7), ax_status_to_byte(AX_EUNKNOWN));
}

Test(status, named_codes_have_distinct_bytes)
{
    ax_status_t all[] = {AX_EINVAL, AX_ENOMEM, AX_ENOBUFS, AX_ECLOSED, AX_ESHUTDOWN, AX_ETIMEDOUT,
                         AX_ENOTFOUND, AX_EEXIST, AX_EPROTO, AX_ETOOBIG, AX_EUNKNOWN};
    size_t n = sizeof all / sizeof all[0];

    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            cr_assert_neq(ax_status_to_byte(all[i]), ax_status_to_byte(all[j]));
}
