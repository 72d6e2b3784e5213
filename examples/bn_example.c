/* The README's example: one BN training step on a 4x2 batch, then inference. */
#include <stdio.h>
#include <bnkit/bn.h>

int main(void) {
    float x[8] = {1, 10, 2, 20, 3, 30, 4, 40}, y[8]; /* NC: 4 samples, 2 channels */
    bnk_bn_layer *bn;
    bnk_bn_config cfg = bnk_bn_config_default(); /* momentum 0.99, eps 1e-3 */
    bnk_bn_shape shape = {BNK_LAYOUT_NC, 4, 2, 1, 1};
    if (bnk_bn_layer_create(&bn, &cfg, 2) != BNK_OK ||
        bnk_bn_layer_forward(bn, &shape, true, y, x) != BNK_OK) { /* training step */
        fprintf(stderr, "bn: %s\n", bnk_errmsg());
        return 1;
    }
    printf("y[0..1] = %.4f %.4f, running mean = %.4f %.4f\n", y[0], y[1],
           bnk_bn_layer_running_mean(bn)[0], bnk_bn_layer_running_mean(bn)[1]);
    bnk_bn_layer_destroy(bn);
    return 0;
}
