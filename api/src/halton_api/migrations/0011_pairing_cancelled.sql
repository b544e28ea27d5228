-- A meter whose `cloud connect` is interrupted (Ctrl-C, --timeout-seconds) cancels its code, so nobody can
-- approve it afterwards: approving a code no meter waits for would create an active device whose token no
-- machine holds.
ALTER TABLE pairing_codes DROP CONSTRAINT pairing_codes_status_check;
ALTER TABLE pairing_codes ADD CONSTRAINT pairing_codes_status_check
    CHECK (status IN ('pending', 'approved', 'denied', 'consumed', 'cancelled'));
