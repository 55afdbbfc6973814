<?php
/**
 * Installs WordPress into the test's database and seeds a site like a
 * real blog's: 200 posts over two years in 8 categories with 30 tags,
 * pages, approved and unapproved comments, a password-protected post, a
 * menu, the default sidebar widgets; pretty permalinks; then activates the
 * kiln plugin (`php install.php activate`), or checks that the must-use
 * plugin is loaded (`must-use`). Run by php-cli with WORDPRESS_CONFIG and HTTP_HOST set.
 */
define( 'WP_INSTALLING', true );
require '/usr/share/wordpress/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';

mt_srand( 42 );
wp_install( 'Kiln Test Blog', 'admin', 'admin@example.org', true, '', 'admin-pass-1' );
update_option( 'permalink_structure', '/%year%/%monthnum%/%postname%/' );
update_option( 'posts_per_page', 10 );
switch_theme( 'twentytwentyone' );
update_option( 'comment_moderation', 0 );
update_option( 'comment_previously_approved', 0 );
update_option( 'require_name_email', 0 );
update_option( 'comment_registration', 0 );
update_option( 'show_comments_cookies_opt_in', 1 );

$words = explode( ' ', 'clay glaze kiln wheel slip bisque raku stoneware porcelain celadon shino tenmoku ash firing cone kiln-wash wedging trimming handle lid teapot bowl mug vase platter studio crack pinhole crawl craze' );
$cats  = array();
foreach ( array( 'Glazes', 'Firing', 'Throwing', 'Studio', 'Tools', 'Clay', 'Design', 'Notes' ) as $name ) {
	$cats[] = wp_insert_term( $name, 'category' )['term_id'];
}
$tags = array();
for ( $i = 0; $i < 30; $i++ ) {
	$tags[] = $words[ $i % count( $words ) ] . '-' . $i;
}

$ids   = array();
$start = strtotime( '2024-01-03 09:00:00' );
for ( $i = 1; $i <= 200; $i++ ) {
	$w     = $words[ mt_rand( 0, count( $words ) - 1 ) ];
	$ids[] = wp_insert_post(
		array(
			'post_title'    => ucfirst( $w ) . " notes $i",
			'post_content'  => "<!-- wp:paragraph --><p>Post $i is about $w and " . $words[ mt_rand( 0, count( $words ) - 1 ) ] . ".</p><!-- /wp:paragraph -->",
			'post_status'   => 'publish',
			'post_date'     => gmdate( 'Y-m-d H:i:s', $start + $i * 3 * 86400 ),
			'post_category' => array_unique( array( $cats[ $i % 8 ], $cats[ mt_rand( 0, 7 ) ] ) ),
			'tags_input'    => array_slice( $tags, mt_rand( 0, 27 ), mt_rand( 0, 3 ) ),
			'post_author'   => 1,
		)
	);
}
foreach ( array( 3, 17, 42, 99, 150, 199 ) as $n ) {
	wp_insert_comment(
		array(
			'comment_post_ID'  => $ids[ $n ],
			'comment_author'   => 'Visitor ' . $n,
			// WordPress picks a random avatar host for a comment without
			// an email: a different page on every request.
			'comment_author_email' => "visitor$n@example.org",
			'comment_content'  => "A comment on post $n.",
			'comment_approved' => 1,
		)
	);
}
wp_insert_comment(
	array(
		'comment_post_ID'  => $ids[5],
		'comment_author'   => 'Spammer',
		'comment_author_email' => 'spam@example.org',
		'comment_content'  => 'Unapproved, never shown.',
		'comment_approved' => 0,
	)
);
$secret = wp_insert_post(
	array(
		'post_title'    => 'Members glaze recipes',
		'post_content'  => 'The secret recipe: 40 feldspar, 30 silica.',
		'post_status'   => 'publish',
		'post_password' => 'celadon',
		'post_date'     => '2025-06-01 10:00:00',
	)
);
$about   = wp_insert_post( array( 'post_type' => 'page', 'post_title' => 'About', 'post_content' => 'A small studio.', 'post_status' => 'publish' ) );
$contact = wp_insert_post( array( 'post_type' => 'page', 'post_title' => 'Contact', 'post_content' => 'Write to us.', 'post_status' => 'publish' ) );

$menu = wp_create_nav_menu( 'Main' );
wp_update_nav_menu_item( $menu, 0, array( 'menu-item-title' => 'About', 'menu-item-object' => 'page', 'menu-item-object-id' => $about, 'menu-item-type' => 'post_type', 'menu-item-status' => 'publish' ) );
wp_update_nav_menu_item( $menu, 0, array( 'menu-item-title' => 'Contact', 'menu-item-object' => 'page', 'menu-item-object-id' => $contact, 'menu-item-type' => 'post_type', 'menu-item-status' => 'publish' ) );
wp_update_nav_menu_item( $menu, 0, array( 'menu-item-title' => 'Glazes', 'menu-item-object' => 'category', 'menu-item-object-id' => $cats[0], 'menu-item-type' => 'taxonomy', 'menu-item-status' => 'publish' ) );
set_theme_mod( 'nav_menu_locations', array( 'primary' => $menu, 'footer' => $menu ) );

// `activate` (plugins/kiln/) or `must-use` (mu-plugins/kiln.php, loaded already).
if ( 'must-use' !== ( $argv[1] ?? 'activate' ) ) {
	$r = activate_plugin( 'kiln/kiln.php' );
	if ( is_wp_error( $r ) ) {
		fwrite( STDERR, 'activate: ' . $r->get_error_message() . "\n" );
		exit( 1 );
	}
} elseif ( ! class_exists( 'Kiln' ) ) {
	fwrite( STDERR, "the must-use plugin is not loaded\n" );
	exit( 1 );
}
printf( "posts=%d menu=%d secret=%d about=%d\n", count( $ids ), $menu, $secret, $about );
