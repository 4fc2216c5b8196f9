// SPDX-License-Identifier: GPL-2.0
/*
 * rpi_tryboot: at a restart whose command says "tryboot" (`systemctl reboot "0 tryboot"`, or systemd's
 * /run/systemd/reboot-param), set the Raspberry Pi firmware's one-shot tryboot flag.
 *
 * With the flag, the firmware starts the next boot, and only that one, from autoboot.txt's [tryboot]
 * partition: a new slot is tried once and any later reset returns to the committed slot. The Raspberry
 * Pi kernel sets the flag in its own firmware driver; Debian's (mainline) kernel does not, so without
 * this module a trial boot would never happen. The image's A/B updates are in docs/image.md.
 */
#include <linux/module.h>
#include <linux/notifier.h>
#include <linux/of.h>
#include <linux/reboot.h>
#include <linux/string.h>
#include <soc/bcm2835/raspberrypi-firmware.h>

/* The firmware's mailbox property that holds the reboot flags; bit 0 is tryboot. */
#define RPI_TRYBOOT_SET_REBOOT_FLAGS 0x00038064

static struct rpi_firmware *firmware;

static int rpi_tryboot_notify(struct notifier_block *nb, unsigned long action, void *data)
{
	const char *command = data;
	u32 flags = 1;
	int ret;

	if (action != SYS_RESTART || !command || !strstr(command, "tryboot"))
		return NOTIFY_DONE;
	/* Reboot notifiers run before devices shut down: the mailbox still answers. */
	ret = rpi_firmware_property(firmware, RPI_TRYBOOT_SET_REBOOT_FLAGS, &flags, sizeof(flags));
	if (ret)
		pr_err("rpi_tryboot: the firmware refused the tryboot flag (%d): the committed slot boots\n", ret);
	else
		pr_info("rpi_tryboot: the next boot is a tryboot\n");
	return NOTIFY_DONE;
}

static struct notifier_block rpi_tryboot_notifier = {
	.notifier_call = rpi_tryboot_notify,
};

static int __init rpi_tryboot_init(void)
{
	struct device_node *node;
	int ret;

	node = of_find_compatible_node(NULL, NULL, "raspberrypi,bcm2835-firmware");
	if (!node) {
		pr_err("rpi_tryboot: no Raspberry Pi firmware in the device tree (not a Pi, or its tree lacks it)\n");
		return -ENODEV;
	}
	firmware = rpi_firmware_get(node);
	of_node_put(node);
	if (!firmware) {
		pr_err("rpi_tryboot: the Raspberry Pi firmware driver has not started\n");
		return -ENODEV;
	}
	ret = register_reboot_notifier(&rpi_tryboot_notifier);
	if (ret) {
		rpi_firmware_put(firmware);
		return ret;
	}
	pr_info("rpi_tryboot: a restart with \"tryboot\" in its command sets the firmware's tryboot flag\n");
	return 0;
}

static void __exit rpi_tryboot_exit(void)
{
	unregister_reboot_notifier(&rpi_tryboot_notifier);
	rpi_firmware_put(firmware);
}

module_init(rpi_tryboot_init);
module_exit(rpi_tryboot_exit);
MODULE_DESCRIPTION("Set the Raspberry Pi firmware's tryboot flag at a \"tryboot\" restart");
MODULE_LICENSE("GPL");
